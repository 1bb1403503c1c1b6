package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringUsesLinkerVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	got := String("vpc-route-publisher")
	if !strings.HasPrefix(got, "vpc-route-publisher v1.2.3 (") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("String = %q", got)
	}
	if Get() != "v1.2.3" {
		t.Errorf("Get = %q, want the linker-set version", Get())
	}
}

func TestGetDefaultsToDev(t *testing.T) {
	// Test binaries carry no module version, so the default shows.
	if got := Get(); got != "dev" {
		t.Errorf("Get = %q, want dev", got)
	}
}
