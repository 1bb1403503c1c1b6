# vpc-route-publisher — every target documented with "##"; `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/vpc-route-publisher/vpc-route-publisher/pkg/version.Version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the publisher and the simulator into bin/.
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

.PHONY: test
test: unit ## Run every test: unit and end-to-end.

.PHONY: unit
unit: ## Run the unit tests (with the race detector where cgo is available).
	$(GO) test -count=1 ./...

.PHONY: tools
tools: $(BIN)/golangci-lint ## Build the pinned tools of hack/tools into bin/.

$(BIN)/golangci-lint: hack/tools/go.mod
	cd hack/tools && $(GO) build -o $(BIN)/golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint with the pinned version.
	$(BIN)/golangci-lint run ./...

.PHONY: verify
verify: ## Check go.mod is tidy, go vet is clean and the tree is unchanged.
	$(GO) mod tidy
	$(GO) vet ./...
	git diff --exit-code -- go.mod go.sum
