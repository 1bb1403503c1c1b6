//go:build tools

// Package tools pins, through this module's go.mod, the kube-apiserver build
// the project compiles from the Go module proxy into bin/ for the end-to-end
// tests (see the Makefile's tools target).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
