//go:build tools

// Package tools pins the helm-docs build that generates the chart's
// README.md from the comments of its values.yaml (make chart-docs).
package tools

import _ "github.com/norwoodj/helm-docs/cmd/helm-docs"
