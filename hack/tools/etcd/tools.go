//go:build tools

// Package tools pins, through this module's go.mod, the etcd build the project
// compiles from the Go module proxy into bin/ (see the Makefile's tools target).
package tools

import _ "go.etcd.io/etcd/server/v3"
