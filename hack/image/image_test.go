package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	testVersion  = "v0.0.0-imagetest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	mainModule   = "github.com/vpc-route-publisher/vpc-route-publisher"
	debianCA     = "/etc/ssl/certs/ca-certificates.crt"
)

var testCreated = time.Unix(1767225600, 0).UTC() // 2026-01-01T00:00:00Z

// testConfig is the release build of the repository this module lives in,
// with a test version, into out.
func testConfig(t *testing.T, out string) BuildConfig {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(goMod), "module "+mainModule+"\n") {
		t.Fatalf("%s is not the root of %s: %v", root, mainModule, err)
	}
	if _, err := os.Stat(debianCA); err != nil {
		t.Fatalf("no CA bundle at %s (run `make image-test`, which installs the ca-certificates package): %v", debianCA, err)
	}
	return BuildConfig{
		RepoRoot:  root,
		Package:   "./cmd/vpc-route-publisher",
		OutDir:    out,
		Platforms: []Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}},
		Name:      "vpc-route-publisher",
		Version:   testVersion,
		Revision:  testRevision,
		Created:   testCreated,
		LDFlags:   "-s -w -X " + mainModule + "/pkg/version.Version=" + testVersion,
		Source:    "https://github.com/vpc-route-publisher/vpc-route-publisher",
		Licenses:  "Apache-2.0",
		CABundle:  CABundle{Path: debianCA, Package: "ca-certificates", Version: "20230311+deb12u1"},
	}
}

// TestReleaseImage builds the release image twice from the same inputs and
// checks that the results are byte-identical, then inspects what the first
// build wrote: the layout as an OCI reader sees it, each variant's config,
// layers and binary (ELF machine, static linking, build settings), the
// archive, and the SBOMs.
func TestReleaseImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	cfg := testConfig(t, filepath.Join(tmp, "first"))
	first, err := Build(ctx, cfg)
	if err != nil {
		t.Fatalf("first build: %v", err)
	}
	again := cfg
	again.OutDir = filepath.Join(tmp, "second")
	second, err := Build(ctx, again)
	if err != nil {
		t.Fatalf("second build: %v", err)
	}

	t.Run("reproducible", func(t *testing.T) {
		if first.IndexDigest != second.IndexDigest {
			t.Errorf("index digests differ: %s and %s", first.IndexDigest, second.IndexDigest)
		}
		same := func(a, b string) {
			t.Helper()
			if fa, fb := fileSHA256(t, a), fileSHA256(t, b); fa != fb {
				t.Errorf("%s and %s differ (sha256 %s and %s)", a, b, fa, fb)
			}
		}
		same(first.ArchivePath, second.ArchivePath)
		for i, p := range first.Platforms {
			q := second.Platforms[i]
			if p.ManifestDigest != q.ManifestDigest {
				t.Errorf("%s manifest digests differ: %s and %s", p.Platform, p.ManifestDigest, q.ManifestDigest)
			}
			same(p.BinaryPath, q.BinaryPath)
			same(p.SBOMPath, q.SBOMPath)
		}
	})

	idx := readLayout(t, first.LayoutDir, first.IndexDigest)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", im.MediaType, types.OCIImageIndex)
	}
	for k, v := range wantLabels() {
		if im.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}
	if len(im.Manifests) != len(cfg.Platforms) {
		t.Fatalf("index has %d manifests, want %d: %+v", len(im.Manifests), len(cfg.Platforms), im.Manifests)
	}

	variants := map[string]inspected{}
	for i, desc := range im.Manifests {
		p := cfg.Platforms[i]
		if desc.Platform == nil || desc.Platform.OS != p.OS || desc.Platform.Architecture != p.Arch {
			t.Errorf("manifest %d is for %+v, want %s", i, desc.Platform, p)
			continue
		}
		if desc.Digest.String() != first.Platforms[i].ManifestDigest {
			t.Errorf("%s: index names %s, the build reported %s", p, desc.Digest, first.Platforms[i].ManifestDigest)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatalf("%s image: %v", p, err)
		}
		variants[p.Arch] = inspectImage(t, p, img)
	}

	t.Run("arm64", func(t *testing.T) {
		amd, arm := variants["amd64"], variants["arm64"]
		if arm.binary == nil || amd.binary == nil {
			t.Fatal("a variant is missing")
		}
		checkStaticELF(t, arm.binary, elf.EM_AARCH64)
		checkStaticELF(t, amd.binary, elf.EM_X86_64)
		if arm.config.Config.User != amd.config.Config.User ||
			!slices.Equal(arm.config.Config.Entrypoint, amd.config.Config.Entrypoint) ||
			!slices.Equal(arm.config.Config.Cmd, amd.config.Config.Cmd) {
			t.Errorf("arm64 runs %q %v %v, amd64 %q %v %v", arm.config.Config.User, arm.config.Config.Entrypoint, arm.config.Config.Cmd,
				amd.config.Config.User, amd.config.Config.Entrypoint, amd.config.Config.Cmd)
		}
		if arm.caLayer != amd.caLayer {
			t.Errorf("the CA layer differs between platforms: %s and %s", arm.caLayer, amd.caLayer)
		}
	})

	t.Run("archive", func(t *testing.T) { checkArchive(t, first.ArchivePath, first.LayoutDir) })

	t.Run("sbom", func(t *testing.T) {
		for i, p := range first.Platforms {
			checkSBOM(t, p, variants[p.Platform.Arch].binary, cfg)
			if got, want := filepath.Base(p.SBOMPath), "vpc-route-publisher_linux_"+cfg.Platforms[i].Arch+".spdx.json"; got != want {
				t.Errorf("SBOM written to %s, want %s beside the archive", got, want)
			}
		}
	})

	t.Run("push", func(t *testing.T) {
		// An in-process registry on loopback: the same client code as
		// `make image-push`, and what it uploaded read back.
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		ref := strings.TrimPrefix(srv.URL, "http://") + "/vpc-route-publisher:" + testVersion
		digest, err := Push(ctx, first.LayoutDir, ref)
		if err != nil {
			t.Fatalf("push: %v", err)
		}
		if digest != first.IndexDigest {
			t.Errorf("pushed %s, built %s", digest, first.IndexDigest)
		}
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		remoteIdx, err := remote.Index(tag, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("reading the pushed index: %v", err)
		}
		if d, _ := remoteIdx.Digest(); d.String() != first.IndexDigest {
			t.Errorf("registry serves %s for %s, want %s", d, ref, first.IndexDigest)
		}
		for _, p := range first.Platforms {
			h, _ := v1.NewHash(p.ManifestDigest)
			img, err := remoteIdx.Image(h)
			if err != nil {
				t.Fatalf("pushed %s image: %v", p.Platform, err)
			}
			if ls, err := img.Layers(); err != nil || len(ls) != 2 {
				t.Errorf("pushed %s image has layers %v (%v), want 2", p.Platform, ls, err)
			}
		}
	})
}

func wantLabels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   "https://github.com/vpc-route-publisher/vpc-route-publisher",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
	}
}

// readLayout opens the layout as a reader would and returns the one index
// it names, checking the name podman gives the loaded image.
func readLayout(t *testing.T, dir, wantDigest string) v1.ImageIndex {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("reading the layout: %v", err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(tm.Manifests))
	}
	d := tm.Manifests[0]
	if d.Digest.String() != wantDigest || d.MediaType != types.OCIImageIndex {
		t.Errorf("index.json names %s %s, want the index %s", d.MediaType, d.Digest, wantDigest)
	}
	if got := d.Annotations[refNameAnnotation]; got != "vpc-route-publisher:"+testVersion {
		t.Errorf("ref.name = %q, want vpc-route-publisher:%s", got, testVersion)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

type inspected struct {
	config  *v1.ConfigFile
	binary  []byte
	caLayer v1.Hash
}

// inspectImage checks one variant: manifest and config media types, the
// config (user, entrypoint, labels, times, platform) and its layers, whose
// only files are the CA bundle and the binary.
func inspectImage(t *testing.T, p Platform, img v1.Image) inspected {
	t.Helper()
	var out inspected
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("%s: manifest %s with config %s, want OCI media types", p, m.MediaType, m.Config.MediaType)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	out.config = cf
	if cf.OS != p.OS || cf.Architecture != p.Arch {
		t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("%s: user %q, want 65532:65532", p, cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/vpc-route-publisher"}) || !slices.Equal(cf.Config.Cmd, []string{"run"}) {
		t.Errorf("%s: entrypoint %v cmd %v", p, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	for k, v := range wantLabels() {
		if cf.Config.Labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", p, k, cf.Config.Labels[k], v)
		}
	}
	if !cf.Created.Equal(testCreated) {
		t.Errorf("%s: created %s, want %s", p, cf.Created.Time, testCreated)
	}
	for _, h := range cf.History {
		if !h.Created.Equal(testCreated) {
			t.Errorf("%s: history entry %q created %s, want %s", p, h.CreatedBy, h.Created.Time, testCreated)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%s: %d layers, want 2 (CA bundle, binary)", p, len(layers))
	}
	if out.caLayer, err = layers[0].Digest(); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for i, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("%s: layer %d has media type %s, want %s", p, i, mt, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range readTar(t, rc, testCreated) {
			files[name] = data
		}
		_ = rc.Close()
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"etc/ssl/certs/ca-certificates.crt", "usr/local/bin/vpc-route-publisher"}; !slices.Equal(names, want) {
		t.Errorf("%s: files %v, want exactly %v (no /etc/passwd, no shell)", p, names, want)
	}
	ca, err := os.ReadFile(debianCA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["etc/ssl/certs/ca-certificates.crt"], ca) {
		t.Errorf("%s: the CA bundle differs from %s", p, debianCA)
	}
	out.binary = files["usr/local/bin/vpc-route-publisher"]
	if out.binary != nil {
		checkBuildSettings(t, p, out.binary)
	}
	return out
}

// readTar returns the regular files of a tar stream after checking that
// its entries are sorted, owned by root and all of the given time.
func readTar(t *testing.T, r io.Reader, mtime time.Time) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	prev := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		if hdr.Name <= prev {
			t.Errorf("tar entry %s follows %s: entries are not sorted", hdr.Name, prev)
		}
		prev = hdr.Name
		if !hdr.ModTime.Equal(mtime) || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("tar entry %s: mtime %s owner %d:%d (%q:%q), want %s and 0:0 unnamed", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, mtime)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = data
		}
	}
}

// checkStaticELF: the right machine, and nothing the kernel would hand to a
// dynamic loader (the image has none).
func checkStaticELF(t *testing.T, bin []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	if f.Machine != machine || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
		t.Errorf("ELF machine %s class %s type %s, want %s ELFCLASS64 ET_EXEC", f.Machine, f.Class, f.Type, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s binary has a %s program header: not statically linked", machine, p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Errorf("%s binary has a .dynamic section: not statically linked", machine)
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s binary imports libraries %v (%v)", machine, libs, err)
	}
}

// checkBuildSettings reads the build information embedded in the binary:
// the release flags, for the variant's architecture.
func checkBuildSettings(t *testing.T, p Platform, bin []byte) {
	t.Helper()
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s: reading build info: %v", p, err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": p.OS, "GOARCH": p.Arch} {
		if settings[k] != v {
			t.Errorf("%s: build setting %s = %q, want %q", p, k, settings[k], v)
		}
	}
	// Go leaves -ldflags out of the build information of a -trimpath
	// build; the stamped version is in the binary's data.
	if !bytes.Contains(bin, []byte(testVersion)) {
		t.Errorf("%s: the binary does not carry the stamped version %s", p, testVersion)
	}
	if bi.Main.Path != mainModule+"/cmd/vpc-route-publisher" && bi.Path != mainModule+"/cmd/vpc-route-publisher" {
		t.Errorf("%s: binary of %s (%s)", p, bi.Path, bi.Main.Path)
	}
}

// checkArchive: the archive holds exactly the layout's files, sorted, with
// fixed metadata.
func checkArchive(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	files := readTar(t, bufio.NewReader(f), testCreated)
	var n int
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(files[filepath.ToSlash(rel)], want) {
			t.Errorf("archive entry %s differs from the layout", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Errorf("archive has %d files, layout %d", len(files), n)
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Errorf("archive has no oci-layout file")
	}
}

// checkSBOM: the document names the image by digest, the binary by
// checksum, and every module the binary links at its linked version.
func checkSBOM(t *testing.T, p PlatformResult, bin []byte, cfg BuildConfig) {
	t.Helper()
	data, err := os.ReadFile(p.SBOMPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: SBOM is not JSON: %v", p.Platform, err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" || doc.CreationInfo.Created != "2026-01-01T00:00:00Z" {
		t.Errorf("%s: SBOM header %+v %+v", p.Platform, doc, doc.CreationInfo)
	}
	ids := map[string]bool{}
	byName := map[string]spdxPackage{}
	for _, pkg := range doc.Packages {
		if ids[pkg.SPDXID] || !strings.HasPrefix(pkg.SPDXID, "SPDXRef-") || spdxIDUnsafe.MatchString(strings.TrimPrefix(pkg.SPDXID, "SPDXRef-")) {
			t.Errorf("%s: bad or duplicate SPDXID %q", p.Platform, pkg.SPDXID)
		}
		ids[pkg.SPDXID] = true
		byName[pkg.Name] = pkg
	}
	for _, r := range doc.Relationships {
		if (r.Element != "SPDXRef-DOCUMENT" && !ids[r.Element]) || !ids[r.Related] {
			t.Errorf("%s: relationship %+v names an unknown element", p.Platform, r)
		}
	}
	sum := sha256.Sum256(bin)
	if got := byName[mainModule].Checksums; len(got) != 1 || got[0].ChecksumValue != hex.EncodeToString(sum[:]) {
		t.Errorf("%s: binary checksum %+v, want sha256 %x of the image's binary", p.Platform, got, sum)
	}
	if got := byName["vpc-route-publisher"].Checksums; len(got) != 1 || "sha256:"+got[0].ChecksumValue != p.ManifestDigest {
		t.Errorf("%s: image checksum %+v, want manifest %s", p.Platform, got, p.ManifestDigest)
	}
	if got := byName["ca-certificates"].VersionInfo; got != cfg.CABundle.Version {
		t.Errorf("%s: ca-certificates version %q, want %q", p.Platform, got, cfg.CABundle.Version)
	}
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	if got := byName["stdlib"].VersionInfo; got != bi.GoVersion {
		t.Errorf("%s: stdlib version %q, want %q", p.Platform, got, bi.GoVersion)
	}
	if len(bi.Deps) < 20 {
		t.Fatalf("%s: the binary links only %d modules", p.Platform, len(bi.Deps))
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		pkg, ok := byName[m.Path]
		if !ok || pkg.VersionInfo != m.Version {
			t.Errorf("%s: SBOM has %s at %q, the binary links %s", p.Platform, m.Path, pkg.VersionInfo, m.Version)
		}
	}
	for _, must := range []string{"k8s.io/client-go", "github.com/aliyun/alibaba-cloud-sdk-go"} {
		if _, ok := byName[must]; !ok {
			t.Errorf("%s: SBOM lacks %s", p.Platform, must)
		}
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
