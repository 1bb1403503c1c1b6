package framework

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ImageBuild locates what `make image` writes under bin/image.
type ImageBuild struct {
	// Archive is the OCI archive podman loads.
	Archive string
	// Layout is the OCI layout directory the archive was packed from.
	Layout string
}

// ImageBuild returns the paths of `make image`'s output, failing when it
// has not run.
func (p Paths) ImageBuild() (ImageBuild, error) {
	b := ImageBuild{
		Archive: filepath.Join(p.Bin, "image", "vpc-route-publisher.oci.tar"),
		Layout:  filepath.Join(p.Bin, "image", "oci"),
	}
	for _, f := range []string{b.Archive, filepath.Join(b.Layout, "index.json")} {
		if _, err := os.Stat(f); err != nil {
			return b, fmt.Errorf("no release image (run `make image`): %w", err)
		}
	}
	return b, nil
}

// ociDescriptor is the part of an OCI descriptor the tests read.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// LayoutImage is one platform's image in the layout.
type LayoutImage struct {
	// RefName is the index's org.opencontainers.image.ref.name.
	RefName        string
	IndexDigest    string
	ManifestDigest string
	// ConfigDigest is what podman reports as the image ID.
	ConfigDigest string
}

// Variant finds the image for os/arch in the layout's one image index. It
// reads the layout with encoding/json alone: the test checks what `make
// image` wrote with other code than the code that wrote it.
func (b ImageBuild) Variant(osName, arch string) (LayoutImage, error) {
	var top struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := b.readJSON(filepath.Join(b.Layout, "index.json"), &top); err != nil {
		return LayoutImage{}, err
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		return LayoutImage{}, fmt.Errorf("index.json of %s lists %+v, want one image index", b.Layout, top.Manifests)
	}
	res := LayoutImage{RefName: top.Manifests[0].Annotations["org.opencontainers.image.ref.name"], IndexDigest: top.Manifests[0].Digest}
	var idx struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := b.readBlob(res.IndexDigest, &idx); err != nil {
		return res, err
	}
	for _, d := range idx.Manifests {
		if d.Platform == nil || d.Platform.OS != osName || d.Platform.Architecture != arch {
			continue
		}
		var m struct {
			Config ociDescriptor `json:"config"`
		}
		if err := b.readBlob(d.Digest, &m); err != nil {
			return res, err
		}
		res.ManifestDigest, res.ConfigDigest = d.Digest, m.Config.Digest
		return res, nil
	}
	return res, fmt.Errorf("the image index %s has no %s/%s manifest", res.IndexDigest, osName, arch)
}

func (b ImageBuild) readBlob(digest string, v any) error {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return fmt.Errorf("malformed digest %q", digest)
	}
	return b.readJSON(filepath.Join(b.Layout, "blobs", algo, hex), v)
}

func (b ImageBuild) readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}
