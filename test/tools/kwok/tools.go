//go:build tools

// Package tools pins kwok, the simulated kubelet of the whole-cluster tests (test/kubeenv's
// cluster mode): it turns fake nodes Ready and their pods Running without containers. It
// is a separate module so that kwok's dependencies never enter remedy's go.mod;
// hack/deps.d/35-kube-cluster.sh builds it into .cache/k8s/bin. stages.yaml is kwok's
// own node (fast, heartbeat-with-lease) and pod (fast) stages from the v0.8.0 module.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
