//go:build tools

// Package tools pins the Kubernetes control plane that the integration tests run
// against: kube-apiserver (hack/deps.d/30-kube.sh) and, for the whole-cluster tests,
// kube-scheduler and kube-controller-manager (hack/deps.d/35-kube-cluster.sh). It is a
// separate module so that k8s.io/kubernetes never enters remedy's go.mod; the scripts
// build it into .cache/k8s/bin.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
