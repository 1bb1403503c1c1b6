package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed layout. The user is numeric, so the image needs no
// /etc/passwd; it matches runAsUser/runAsGroup of deploy/, and the files
// belong to root so that the process cannot change them.
const (
	User         = "65532:65532"
	BinaryPath   = "/usr/local/bin/" + Binary
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

// Entrypoint and Cmd: the container runs `vpc-route-publisher run` unless
// the Deployment's args say otherwise (they start with "run" too).
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"run"}
)

// variant is one platform's input to the index.
type variant struct {
	Platform   Platform
	BinaryPath string
}

// Labels are the OCI annotation keys the image carries, as config labels
// and as annotations of the index and of each manifest.
func Labels(cfg BuildConfig) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    cfg.Name,
		"org.opencontainers.image.source":   cfg.Source,
		"org.opencontainers.image.version":  cfg.Version,
		"org.opencontainers.image.revision": cfg.Revision,
		"org.opencontainers.image.licenses": cfg.Licenses,
		"org.opencontainers.image.created":  cfg.Created.Format(time.RFC3339),
	}
}

// assemble builds one image per variant on an empty base (nothing is
// pulled) and the index over them, in the order of the variants.
func assemble(cfg BuildConfig, caPEM []byte, variants []variant) (v1.ImageIndex, []v1.Image, error) {
	// The CA layer is the same for every platform, so a registry stores it
	// once.
	caLayer, err := layer(cfg.Created, file{path: CABundlePath, mode: 0o644, data: caPEM})
	if err != nil {
		return nil, nil, fmt.Errorf("building the CA bundle layer: %w", err)
	}
	labels := Labels(cfg)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var images []v1.Image
	for _, v := range variants {
		img, err := image(cfg, caLayer, v, labels)
		if err != nil {
			return nil, nil, fmt.Errorf("assembling the %s image: %w", v.Platform, err)
		}
		images = append(images, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: v.Platform.OS, Architecture: v.Platform.Arch},
			},
		})
	}
	idx, ok := mutate.Annotations(idx, labels).(v1.ImageIndex)
	if !ok {
		return nil, nil, fmt.Errorf("annotating the index: unexpected type")
	}
	return idx, images, nil
}

func image(cfg BuildConfig, caLayer v1.Layer, v variant, labels map[string]string) (v1.Image, error) {
	bin, err := os.ReadFile(v.BinaryPath)
	if err != nil {
		return nil, fmt.Errorf("reading the binary: %w", err)
	}
	binLayer, err := layer(cfg.Created, file{path: BinaryPath, mode: 0o755, data: bin})
	if err != nil {
		return nil, fmt.Errorf("building the binary layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: cfg.Created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: caLayer, History: v1.History{Created: created, CreatedBy: "image build: CA bundle of " + cfg.CABundle.Package + " " + cfg.CABundle.Version}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: created, CreatedBy: "image build: " + Binary + " " + cfg.Version + " " + v.Platform.String()}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = v.Platform.OS, v.Platform.Arch
	cf.Created = created
	cf.Config.User = User
	cf.Config.Entrypoint = Entrypoint
	cf.Config.Cmd = Cmd
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	img, ok := mutate.Annotations(img, labels).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("annotating the manifest: unexpected type")
	}
	return img, nil
}

// file is a regular file of a layer.
type file struct {
	path string
	mode int64
	data []byte
}

// layer writes files and their parent directories as a gzip-compressed
// tar: entries sorted by name, owned by root, every time the given one, no
// user or group names, so that the same files always give the same digest.
func layer(mtime time.Time, files ...file) (v1.Layer, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(strings.TrimPrefix(f.path, "/")); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatUSTAR}})
	}
	for _, f := range files {
		entries = append(entries, entry{
			hdr:  &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatUSTAR},
			data: f.data,
		})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("writing tar header %s: %w", e.hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", e.hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the layer tar: %w", err)
	}
	tarBytes := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
}
