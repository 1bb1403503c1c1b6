package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRefusesIncompleteInput: every input the image's reproducibility
// or labels depend on is required, and nothing is compiled or written
// before the inputs are checked.
func TestBuildRefusesIncompleteInput(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*BuildConfig)
		want string
	}{
		"no version":   {func(c *BuildConfig) { c.Version = "" }, "--version"},
		"no revision":  {func(c *BuildConfig) { c.Revision = "" }, "--revision"},
		"no platforms": {func(c *BuildConfig) { c.Platforms = nil }, "no platforms"},
		"no CA bundle": {func(c *BuildConfig) { c.CABundle.Path = filepath.Join(t.TempDir(), "missing.crt") }, "ca-certificates"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			cfg := testConfig(t, out)
			tc.edit(&cfg)
			_, err := Build(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %v, want an error naming %s", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a refused build wrote %s", out)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	t.Run("platforms", func(t *testing.T) {
		for _, bad := range []string{"amd64", "windows/amd64", "linux/", "linux/arm/v7"} {
			if _, err := ParsePlatform(bad); err == nil {
				t.Errorf("ParsePlatform(%q) accepted it", bad)
			}
		}
		if p, err := ParsePlatform("linux/arm64"); err != nil || p != (Platform{OS: "linux", Arch: "arm64"}) {
			t.Errorf("ParsePlatform(linux/arm64) = %v, %v", p, err)
		}
	})
	t.Run("created from SOURCE_DATE_EPOCH", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
		cfg, err := parseBuildFlags([]string{"--version=v1", "--revision=abc"})
		if err != nil || !cfg.Created.Equal(testCreated) {
			t.Errorf("created = %v, %v; want %v", cfg.Created, err, testCreated)
		}
		if len(cfg.Platforms) != 2 {
			t.Errorf("default platforms %v, want linux/amd64 and linux/arm64", cfg.Platforms)
		}
	})
	t.Run("no fixed time", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "")
		if _, err := parseBuildFlags([]string{"--version=v1"}); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Errorf("parseBuildFlags without a time = %v, want an error naming SOURCE_DATE_EPOCH", err)
		}
	})
}

// TestPushRefusesBadInput: a malformed reference or a missing layout fails
// before any network traffic.
func TestPushRefusesBadInput(t *testing.T) {
	if _, err := Push(context.Background(), t.TempDir(), "not a reference"); err == nil || !strings.Contains(err.Error(), "<your-registry>") {
		t.Errorf("push to a malformed reference = %v", err)
	}
	if _, err := Push(context.Background(), filepath.Join(t.TempDir(), "none"), "127.0.0.1:1/vpc-route-publisher:v1"); err == nil || !strings.Contains(err.Error(), "make image") {
		t.Errorf("push of a missing layout = %v", err)
	}
}

func TestGolangPURL(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"github.com/docker/cli", "v29.7.2+incompatible"}: "pkg:golang/github.com/docker/cli@v29.7.2%2Bincompatible",
		{"k8s.io/client-go", "v0.37.2"}:                   "pkg:golang/k8s.io/client-go@v0.37.2",
	} {
		if got := golangPURL(in[0], in[1]); got != want {
			t.Errorf("golangPURL(%s, %s) = %s, want %s", in[0], in[1], got, want)
		}
	}
}
