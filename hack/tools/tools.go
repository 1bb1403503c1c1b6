//go:build tools

// Package tools pins, through this module's go.mod, every tool the project
// builds from the Go module proxy into bin/ (see the Makefile's tools target).
package tools
