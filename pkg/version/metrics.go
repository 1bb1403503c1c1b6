package version

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Revision returns the VCS revision the binary was built from, as the Go
// toolchain records it, or "unknown" (a build outside a checkout, or with
// -buildvcs=false).
func Revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// NewBuildInfo returns the vpc_route_publisher_build_info gauge, 1 with the
// build's version, revision and Go version as labels, so that dashboards
// and alerts can tell which build each replica runs (as Prometheus's own
// build_info metrics do).
func NewBuildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "vpc_route_publisher", Name: "build_info",
		Help: "1, labelled with the version, the VCS revision and the Go version of the build.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(Get(), Revision(), runtime.Version()).Set(1)
	return g
}
