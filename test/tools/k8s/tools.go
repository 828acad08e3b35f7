//go:build tools

// Package tools pins the kube-apiserver that the Kubernetes integration tests run
// against. It is a separate module so that k8s.io/kubernetes never enters remedy's go.mod;
// hack/deps.d/30-kube.sh builds it into .cache/k8s/bin.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
