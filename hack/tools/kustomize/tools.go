//go:build tools

// Package tools pins, through this module's go.mod, the kustomize build the project
// compiles from the Go module proxy into bin/ (see the Makefile's tools target).
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
