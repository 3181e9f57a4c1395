//go:build tools

// Package tools pins the Kubernetes binaries the cluster test tier runs
// (kube-apiserver, and kube-proxy as a reference) so that this module's
// go.mod/go.sum record the exact dependency graph they build with. It is a
// separate module so the main module never depends on k8s.io/kubernetes.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
