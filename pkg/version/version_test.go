package version

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewBuildInfo())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "vpc_route_publisher_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != Get() || labels["goversion"] != runtime.Version() || labels["revision"] == "" {
		t.Errorf("build_info %v = %v", labels, m.GetGauge().GetValue())
	}
}
