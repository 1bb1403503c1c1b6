//go:build tools

// Package tools pins, through this module's go.mod, the helm build the project
// compiles from the Go module proxy into bin/ (see the Makefile's tools target).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
