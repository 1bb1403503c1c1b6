package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BuildConfig is everything a release image is made of. Equal configs on
// equal sources give byte-identical outputs: the binaries are built with
// -trimpath and without VCS stamping (the revision is a flag, not whatever
// the work tree looks like), and every timestamp in the image is Created.
type BuildConfig struct {
	RepoRoot string
	Package  string
	OutDir   string
	// Platforms lists the variants of the image index, in index order.
	Platforms []Platform
	Name      string
	Version   string
	Revision  string
	Created   time.Time
	LDFlags   string
	Source    string
	Licenses  string
	CABundle  CABundle
}

// CABundle is the PEM file of trusted roots the publisher needs to reach the
// Alibaba Cloud APIs over HTTPS. The image has no package manager, so it is
// copied from the build machine's Debian ca-certificates package, whose
// version the SBOM records.
type CABundle struct {
	Path    string
	Package string
	Version string
}

// Platform is one os/arch variant.
type Platform struct {
	OS   string
	Arch string
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// dir is the platform's directory name under the output directory.
func (p Platform) dir() string { return p.OS + "_" + p.Arch }

// ParsePlatform parses "linux/arm64". Only Linux is supported: the image
// runs on Kubernetes nodes.
func ParsePlatform(s string) (Platform, error) {
	osName, arch, ok := strings.Cut(s, "/")
	if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
		return Platform{}, fmt.Errorf("platform %q: want linux/<arch>", s)
	}
	return Platform{OS: osName, Arch: arch}, nil
}

// Binary names the executable inside the image and in the output directory.
const Binary = "vpc-route-publisher"

// Result says what Build wrote.
type Result struct {
	IndexDigest string
	RefName     string
	LayoutDir   string
	ArchivePath string
	Platforms   []PlatformResult
}

// PlatformResult is one variant of the index.
type PlatformResult struct {
	Platform       Platform
	BinaryPath     string
	SBOMPath       string
	ManifestDigest string
}

func (c BuildConfig) validate() error {
	var missing []string
	for name, v := range map[string]string{
		"repo": c.RepoRoot, "package": c.Package, "out": c.OutDir, "name": c.Name, "version": c.Version,
		"revision": c.Revision, "source": c.Source, "licenses": c.Licenses, "ca-bundle": c.CABundle.Path,
	} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing build settings: %s", strings.Join(missing, ", "))
	}
	if len(c.Platforms) == 0 {
		return errors.New("no platforms to build")
	}
	return nil
}

// Build compiles the binaries, assembles the image index, and writes the
// OCI layout, its archive and one SBOM per platform into OutDir, which it
// empties first so that nothing of an earlier build leaks into the layout.
func Build(ctx context.Context, cfg BuildConfig) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cfg.CABundle.Path)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle (install the ca-certificates package): %w", err)
	}
	if err := os.RemoveAll(cfg.OutDir); err != nil {
		return nil, fmt.Errorf("emptying %s: %w", cfg.OutDir, err)
	}
	res := &Result{
		RefName:     cfg.Name + ":" + cfg.Version,
		LayoutDir:   filepath.Join(cfg.OutDir, "oci"),
		ArchivePath: filepath.Join(cfg.OutDir, cfg.Name+".oci.tar"),
	}
	var variants []variant
	for _, p := range cfg.Platforms {
		bin := filepath.Join(cfg.OutDir, p.dir(), Binary)
		if err := compile(ctx, cfg, p, bin); err != nil {
			return nil, err
		}
		variants = append(variants, variant{Platform: p, BinaryPath: bin})
	}
	idx, images, err := assemble(cfg, caPEM, variants)
	if err != nil {
		return nil, err
	}
	digest, err := writeLayout(res.LayoutDir, idx, res.RefName)
	if err != nil {
		return nil, err
	}
	res.IndexDigest = digest.String()
	if err := writeArchive(res.ArchivePath, res.LayoutDir, cfg.Created); err != nil {
		return nil, err
	}
	for i, v := range variants {
		md, err := images[i].Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of the %s image: %w", v.Platform, err)
		}
		sbomPath := filepath.Join(cfg.OutDir, cfg.Name+"_"+v.Platform.dir()+".spdx.json")
		if err := writeSBOM(sbomPath, cfg, v, md.String(), caPEM); err != nil {
			return nil, err
		}
		res.Platforms = append(res.Platforms, PlatformResult{
			Platform: v.Platform, BinaryPath: v.BinaryPath, SBOMPath: sbomPath, ManifestDigest: md.String(),
		})
	}
	return res, nil
}

// compile builds the static release binary for p. The environment pins
// what changes the machine code besides GOOS/GOARCH (cgo off, the baseline
// micro-architecture levels), so that the image runs on every CPU Alibaba
// sells and does not depend on the builder's environment.
func compile(ctx context.Context, cfg BuildConfig, p Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags="+cfg.LDFlags, "-o", out, cfg.Package)
	cmd.Dir = cfg.RepoRoot
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch,
		"GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for %s: %w", cfg.Package, p, err)
	}
	return nil
}
