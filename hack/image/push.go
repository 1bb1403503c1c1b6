package main

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads the image index of an OCI layout written by Build, with
// every manifest and blob it references, to ref. Credentials come from the
// usual Docker/Podman config files (`docker login`, `podman login`, or
// $DOCKER_CONFIG), as with any registry client.
func Push(ctx context.Context, layoutDir, ref string) (string, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("parsing %q (want <your-registry>/<repository>:<tag>): %w", ref, err)
	}
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return "", fmt.Errorf("opening the OCI layout %s (run `make image` first): %w", layoutDir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return "", fmt.Errorf("reading %s/index.json: %w", layoutDir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("reading %s/index.json: %w", layoutDir, err)
	}
	if len(im.Manifests) != 1 {
		return "", fmt.Errorf("%s holds %d entries, want the one image index `image build` writes", layoutDir, len(im.Manifests))
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		return "", fmt.Errorf("reading the image index %s: %w", im.Manifests[0].Digest, err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("pushing to %s: %w", tag, err)
	}
	return im.Manifests[0].Digest.String(), nil
}
