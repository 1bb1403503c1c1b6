# vpc-route-publisher — every target documented with "##"; `make help` lists them.

SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

BIN      := $(CURDIR)/bin
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Evaluated once, so that the image's tag and the version stamped into its
# binaries cannot differ when the tree changes during a build.
VERSION  := $(VERSION)
LDFLAGS  := -s -w -X github.com/vpc-route-publisher/vpc-route-publisher/pkg/version.Version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the publisher and the simulator into bin/.
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

.PHONY: test
test: unit deploy-check image-test e2e ## Run every test: unit, deploy/ checks, the image build and end-to-end.

# The unit tests run under the race detector (cgo, which the static release
# build turns off); deploy/ is tested by deploy-check, with the tools it needs.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/deploy$$')

.PHONY: unit
unit: ## Run the unit tests under the race detector.
	CGO_ENABLED=1 $(GO) test -race -count=1 $(UNIT_PKGS)

# Tools are built from the pinned modules under hack/tools (one module per tool,
# see hack/tools/tools.go) into bin/. Each binary is a file target depending on
# its module's go.mod and go.sum, so a warm bin/ costs nothing and changing a
# pin rebuilds exactly that tool. GOTOOLCHAIN=local: never fetch a toolchain.
TOOLS_GO := GOTOOLCHAIN=local GOFLAGS=-buildvcs=false $(GO)
TOOLS    := $(BIN)/golangci-lint $(BIN)/helm $(BIN)/helm-docs $(BIN)/kustomize $(BIN)/promtool $(BIN)/etcd $(BIN)/kube-apiserver

.PHONY: tools
tools: $(TOOLS) ## Build the pinned tools of hack/tools into bin/.

$(BIN)/golangci-lint: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(TOOLS_GO) build -trimpath -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(BIN)/helm: hack/tools/helm/go.mod hack/tools/helm/go.sum
	cd hack/tools/helm && $(TOOLS_GO) build -trimpath -o $@ helm.sh/helm/v3/cmd/helm

$(BIN)/helm-docs: hack/tools/helm-docs/go.mod hack/tools/helm-docs/go.sum
	cd hack/tools/helm-docs && $(TOOLS_GO) build -trimpath -o $@ github.com/norwoodj/helm-docs/cmd/helm-docs

$(BIN)/kustomize: hack/tools/kustomize/go.mod hack/tools/kustomize/go.sum
	cd hack/tools/kustomize && $(TOOLS_GO) build -trimpath -o $@ sigs.k8s.io/kustomize/kustomize/v5

# remove_all_sd leaves out Prometheus's service-discovery plugins (the cloud
# SDKs of AWS, Azure, GCE, ...): promtool only checks and tests rules here, and
# the plugins are most of its cold build time.
$(BIN)/promtool: hack/tools/promtool/go.mod hack/tools/promtool/go.sum
	cd hack/tools/promtool && $(TOOLS_GO) build -trimpath -tags remove_all_sd -o $@ github.com/prometheus/prometheus/cmd/promtool

$(BIN)/etcd: hack/tools/etcd/go.mod hack/tools/etcd/go.sum
	cd hack/tools/etcd && $(TOOLS_GO) build -trimpath -o $@ go.etcd.io/etcd/server/v3

$(BIN)/kube-apiserver: hack/tools/kube-apiserver/go.mod hack/tools/kube-apiserver/go.sum
	cd hack/tools/kube-apiserver && $(TOOLS_GO) build -trimpath -o $@ k8s.io/kubernetes/cmd/kube-apiserver

# The release image (docs/deployment.md): hack/image cross-compiles the static
# binaries and assembles a multi-arch OCI image index with go-containerregistry,
# no container engine and no registry involved. Every timestamp is the commit
# time, so the same commit gives the same digest. The tool is a file target
# like the pinned tools; the CA bundle comes from Debian's ca-certificates.
IMAGE_NAME      ?= vpc-route-publisher
IMAGE_TAG       ?= $(VERSION)
IMAGE_DIR       := $(BIN)/image
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
REVISION        ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

$(BIN)/image-tool: hack/image/go.mod hack/image/go.sum $(filter-out %_test.go,$(wildcard hack/image/*.go))
	cd hack/image && $(TOOLS_GO) build -trimpath -o $@ .

.PHONY: image
image: $(BIN)/image-tool ## Build the multi-arch release image into bin/image (OCI layout, archive, SPDX SBOMs).
	hack/ensure-deb.sh ca-certificates
	$(BIN)/image-tool build --repo=$(CURDIR) --out=$(IMAGE_DIR) --name=$(IMAGE_NAME) \
	  --platforms=$(IMAGE_PLATFORMS) --version=$(IMAGE_TAG) --revision=$(REVISION) --created=$(SOURCE_DATE_EPOCH) \
	  --ldflags='$(LDFLAGS)' --ca-bundle-version="$$(dpkg-query -W -f='$${Version}' ca-certificates)"

.PHONY: image-push
image-push: $(BIN)/image-tool ## Push the index of `make image` as $(REGISTRY)/vpc-route-publisher:$(IMAGE_TAG).
	@test -n "$(REGISTRY)" || { echo 'usage: make image-push REGISTRY=<your-registry>[/<path>]' >&2; exit 2; }
	$(BIN)/image-tool push --layout=$(IMAGE_DIR)/oci --ref=$(REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG)

.PHONY: image-test
image-test: ## Test the image build: reproducible, both variants inspected, SBOM, push to a loopback registry.
	hack/ensure-deb.sh ca-certificates
	cd hack/image && GOTOOLCHAIN=local $(GO) test -count=1 -timeout 30m ./...

.PHONY: lint
lint: $(BIN)/golangci-lint ## Run golangci-lint with the pinned version (also on the hack/image module).
	$(BIN)/golangci-lint run ./...
	cd hack/image && $(BIN)/golangci-lint run --config=$(CURDIR)/.golangci.yml ./...

.PHONY: e2e
e2e: tools build image ## Run the end-to-end suite (etcd, kube-apiserver, alisim, the built binaries and the release image in podman, on loopback).
	hack/ensure-deb.sh podman runc
	$(GO) test -tags e2e -count=1 -timeout 30m ./e2e/...

.PHONY: demo
demo: tools build ## Run the publisher against a local control plane and the simulator; Ctrl-C (or DEMO_SECONDS) ends it.
	$(GO) build -o $(BIN)/demo ./e2e/cmd/demo
	$(BIN)/demo

.PHONY: bench
bench: $(BIN)/etcd $(BIN)/kube-apiserver ## Benchmark the publisher against the upstream route controller (BENCHMARKS.md); BENCH_FLAGS adds routebench flags.
	$(GO) build -trimpath -ldflags '-X github.com/vpc-route-publisher/vpc-route-publisher/pkg/version.Version=$(VERSION)' -o $(BIN)/bench/vpc-route-publisher ./cmd/vpc-route-publisher
	$(GO) build -trimpath -o $(BIN)/routebench ./bench/cmd/routebench
	$(BIN)/routebench --bin-dir=$(BIN) --publisher-bin=$(BIN)/bench/vpc-route-publisher $(BENCH_FLAGS)

# The chart's README.md is generated from its values.yaml comments and
# README.md.gotmpl; deploy-check fails when the committed one is stale.
HELM_DOCS = $(BIN)/helm-docs --chart-search-root deploy/helm --skip-version-footer --sort-values-order file --log-level warning

.PHONY: chart-docs
chart-docs: $(BIN)/helm-docs ## Regenerate the chart's README.md from its values.yaml comments.
	$(HELM_DOCS)

# The Go tests of deploy/ include TestPromtoolOnChartRenderedRules: promtool
# on the rules as the chart renders them, with default and non-default values.
.PHONY: deploy-check
deploy-check: $(BIN)/helm $(BIN)/helm-docs $(BIN)/kustomize $(BIN)/promtool ## Lint and render deploy/ (Helm and kustomize, compared object by object), check the chart's README is current and unit-test the alerting rules, as written and as the chart renders them.
	$(HELM_DOCS) --dry-run | diff -u deploy/helm/vpc-route-publisher/README.md - || { echo 'deploy/helm/vpc-route-publisher/README.md is stale: run make chart-docs' >&2; exit 1; }
	$(BIN)/helm lint --strict deploy/helm/vpc-route-publisher --values deploy/testdata/values-example.yaml
	$(BIN)/kustomize build deploy/base >/dev/null
	$(BIN)/kustomize build deploy/overlays/example >/dev/null
	$(BIN)/promtool check rules deploy/prometheus/rules.yaml
	$(BIN)/promtool test rules deploy/prometheus/tests/*.yaml
	$(GO) test -count=1 ./deploy/

.PHONY: verify
verify: ## Check go.mod is tidy, go vet is clean and the tree is unchanged.
	$(GO) mod tidy
	$(GO) vet ./...
	git diff --exit-code -- go.mod go.sum
