//go:build tools

// Package tools pins the etcd that the Kubernetes integration tests' kube-apiserver
// stores its data in. It is a module of its own (apart from test/tools/k8s) so that
// etcd's dependencies and Kubernetes' never constrain each other;
// hack/deps.d/30-kube.sh builds it into .cache/k8s/bin.
package tools

import _ "go.etcd.io/etcd/server/v3"
