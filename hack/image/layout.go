package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// refNameAnnotation names the index in the layout's index.json; `podman
// load` and skopeo take the image name from it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// writeLayout writes idx as the only entry of a fresh OCI layout in dir and
// returns its digest. The index's own annotations are repeated on its
// descriptor in index.json, where tools that list a layout look.
func writeLayout(dir string, idx v1.ImageIndex, refName string) (v1.Hash, error) {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("creating the OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	anns := map[string]string{refNameAnnotation: refName}
	for k, v := range im.Annotations {
		anns[k] = v
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(anns)); err != nil {
		return v1.Hash{}, fmt.Errorf("writing the index to %s: %w", dir, err)
	}
	return idx.Digest()
}

// writeArchive packs the layout directory into an OCI archive (a tar of the
// layout, what `podman load` and `skopeo copy oci-archive:` read) with
// sorted entries, root ownership and one fixed time.
func writeArchive(archive, dir string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	sort.Strings(paths)
	f, err := os.Create(archive)
	if err != nil {
		return fmt.Errorf("creating %s: %w", archive, err)
	}
	tw := tar.NewWriter(f)
	for _, p := range paths {
		if err := addToArchive(tw, dir, p, mtime); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		_ = f.Close()
		return fmt.Errorf("finishing %s: %w", archive, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", archive, err)
	}
	return nil
}

func addToArchive(tw *tar.Writer, dir, p string, mtime time.Time) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatUSTAR}
	switch {
	case st.IsDir():
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
	case st.Mode().IsRegular():
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
	default:
		return fmt.Errorf("%s: unexpected file type %s in the OCI layout", p, st.Mode().Type())
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	return nil
}
