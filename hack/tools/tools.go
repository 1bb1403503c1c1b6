//go:build tools

// Package tools pins, through this module's go.mod, the golangci-lint build
// the project compiles from the Go module proxy into bin/.
//
// The other tools live in one module each (helm/, helm-docs/, kustomize/, promtool/,
// etcd/, kube-apiserver/): helm, prometheus, etcd and kubernetes each pin
// their own k8s.io/*, grpc, otel and prometheus client versions, kube-apiserver
// additionally needs a replace block for the k8s.io staging modules, and minimal
// version selection across all of them would build none of them at the versions
// their authors tested. A module per tool also means editing one tool's pin
// rebuilds only that tool.
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
