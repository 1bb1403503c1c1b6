# syntax=docker/dockerfile:1
#
# The vpc-route-publisher image: a static binary on an empty, non-root base.
#
# This file is not built by this repository's tests: the development and CI
# machines have no container engine. What it packages is built and tested
# there all the same: `make build` compiles the same static binary
# (CGO_ENABLED=0, -trimpath, the same -ldflags) and `make test` exercises it.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t <registry>/vpc-route-publisher:<tag> .

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
# Dependencies first, so that a source change does not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/vpc-route-publisher/vpc-route-publisher/pkg/version.Version=${VERSION}" \
      -o /out/vpc-route-publisher ./cmd/vpc-route-publisher

# The final image is scratch: no shell, no package manager, nothing but the
# static binary and the CA bundle it needs to verify the Alibaba Cloud API
# endpoints over HTTPS. It runs as uid/gid 65532, matching the manifests'
# runAsUser, and needs no writable filesystem.
FROM scratch
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/vpc-route-publisher /usr/local/bin/vpc-route-publisher
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/vpc-route-publisher"]
CMD ["run"]
