// Command image builds and pushes the vpc-route-publisher release image
// without a container engine, the way ko does: it cross-compiles the static
// binaries with the Go toolchain and assembles an OCI image index around
// them with go-containerregistry.
//
//	image build --out=bin/image --version=v0.1.0 --revision=<commit> --created=<unix seconds> ...
//	image push  --layout=bin/image/oci --ref=<your-registry>/vpc-route-publisher:v0.1.0
//
// `make image` and `make image-push` call it with the right flags; see
// docs/deployment.md. Its own module keeps go-containerregistry and its
// dependencies out of the publisher's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: image build|push [flags]")
	}
	switch args[0] {
	case "build":
		cfg, err := parseBuildFlags(args[1:])
		if err != nil {
			return err
		}
		res, err := Build(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Printf("image index %s (%s)\n", res.IndexDigest, res.RefName)
		for _, p := range res.Platforms {
			fmt.Printf("  %s: manifest %s, SBOM %s\n", p.Platform, p.ManifestDigest, p.SBOMPath)
		}
		fmt.Printf("OCI layout %s, archive %s\n", res.LayoutDir, res.ArchivePath)
		return nil
	case "push":
		fs := flag.NewFlagSet("push", flag.ContinueOnError)
		layoutDir := fs.String("layout", "", "OCI layout directory written by `image build`")
		ref := fs.String("ref", "", "where to push the index: <your-registry>/<repository>:<tag>")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *layoutDir == "" || *ref == "" {
			return errors.New("push needs --layout and --ref")
		}
		digest, err := Push(ctx, *layoutDir, *ref)
		if err != nil {
			return err
		}
		fmt.Printf("pushed %s@%s\n", *ref, digest)
		return nil
	default:
		return fmt.Errorf("unknown subcommand %q: want build or push", args[0])
	}
}

func parseBuildFlags(args []string) (BuildConfig, error) {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var cfg BuildConfig
	var platforms string
	var created int64
	fs.StringVar(&cfg.RepoRoot, "repo", ".", "root of the vpc-route-publisher repository")
	fs.StringVar(&cfg.Package, "package", "./cmd/vpc-route-publisher", "main package to build, relative to --repo")
	fs.StringVar(&cfg.OutDir, "out", "bin/image", "output directory (replaced): binaries, OCI layout, archive, SBOMs")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	fs.StringVar(&cfg.Name, "name", "vpc-route-publisher", "image name, used in the layout's ref.name annotation")
	fs.StringVar(&cfg.Version, "version", "", "release version (image label and tag)")
	fs.StringVar(&cfg.Revision, "revision", "", "source revision (commit) the binaries are built from")
	fs.Int64Var(&created, "created", -1, "creation time in Unix seconds, for every timestamp in the image (the commit time keeps builds reproducible); default $SOURCE_DATE_EPOCH")
	fs.StringVar(&cfg.LDFlags, "ldflags", "", "linker flags of the release build (version stamping)")
	fs.StringVar(&cfg.Source, "source", "https://github.com/vpc-route-publisher/vpc-route-publisher", "org.opencontainers.image.source label")
	fs.StringVar(&cfg.Licenses, "licenses", "Apache-2.0", "org.opencontainers.image.licenses label (SPDX expression)")
	fs.StringVar(&cfg.CABundle.Path, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle copied into the image")
	fs.StringVar(&cfg.CABundle.Package, "ca-bundle-package", "ca-certificates", "Debian package the CA bundle comes from (recorded in the SBOM)")
	fs.StringVar(&cfg.CABundle.Version, "ca-bundle-version", "", "version of that package (recorded in the SBOM)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for _, p := range strings.Split(platforms, ",") {
		pl, err := ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			return cfg, err
		}
		cfg.Platforms = append(cfg.Platforms, pl)
	}
	if created < 0 {
		v := os.Getenv("SOURCE_DATE_EPOCH")
		if v == "" {
			return cfg, errors.New("--created or SOURCE_DATE_EPOCH is required: a fixed time keeps the image reproducible")
		}
		if _, err := fmt.Sscan(v, &created); err != nil {
			return cfg, fmt.Errorf("parsing SOURCE_DATE_EPOCH %q: %w", v, err)
		}
	}
	cfg.Created = time.Unix(created, 0).UTC()
	return cfg, nil
}
