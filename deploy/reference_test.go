package deploy

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// recordingRegisterer records the names of the metrics registered into it.
type recordingRegisterer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return false }

// codeMetrics returns the publisher's own metric names: those pkg/route
// registers, and those pkg/cloud declares (its metrics are only built by a
// connected client, so they are read from its source).
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	reg := &recordingRegisterer{names: map[string]bool{}}
	if _, err := route.NewMetrics(reg); err != nil {
		t.Fatalf("route.NewMetrics: %v", err)
	}
	reg.MustRegister(version.NewBuildInfo())
	src, err := os.ReadFile("../pkg/cloud/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for n := range reg.names {
		if strings.HasPrefix(n, "vpc_route_publisher_") {
			names[n] = true
		}
	}
	cloud := regexp.MustCompile(`Name:\s+"([a-z_]+)"`).FindAllSubmatch(src, -1)
	if len(cloud) == 0 {
		t.Fatal("found no metric in pkg/cloud/metrics.go")
	}
	for _, m := range cloud {
		names["vpc_route_publisher_"+string(m[1])] = true
	}
	return names
}

// TestMetricsReferenceMatchesCode checks that the README's metrics reference
// lists exactly the metrics the code exports, and that the alerting rules
// and the dashboard only query metrics that exist.
func TestMetricsReferenceMatchesCode(t *testing.T) {
	code := codeMetrics(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(vpc_route_publisher_[a-z_]+)` \\|").FindAllSubmatch(readme, -1) {
		documented[string(m[1])] = true
	}
	for n := range code {
		if !documented[n] {
			t.Errorf("the code exports %s, which the README's metrics reference does not list", n)
		}
	}
	for n := range documented {
		if !code[n] {
			t.Errorf("the README's metrics reference lists %s, which the code does not export", n)
		}
	}

	used := regexp.MustCompile(`vpc_route_publisher_[a-z_]+`)
	for _, f := range []string{rulesSource, byteCopies[1][0]} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllString(string(b), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(m, suffix); ok && code[trimmed] {
					base = trimmed
				}
			}
			if !code[base] {
				t.Errorf("%s queries %s, which the code does not export", f, m)
			}
		}
	}
	if want := 21; len(code) != want {
		t.Errorf("the code exports %d metrics (%v), the contract has %d", len(code), slices.Sorted(maps.Keys(code)), want)
	}
}

// klogFlag reports whether a flag of the command line is one of klog's.
func klogFlag(name string) bool {
	return strings.Contains(name, "_") || slices.Contains([]string{"v", "vmodule", "logtostderr", "alsologtostderr", "alsologtostderrthreshold", "stderrthreshold"}, name)
}

// TestEveryFlagIsDocumentedAndAChartValue builds the publisher, reads the
// flags of `run` from its help, and checks that each one is in the README's
// configuration reference and in the chart's environment, and that the
// manifests set no variable `run` does not know.
func TestEveryFlagIsDocumentedAndAChartValue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the publisher")
	}
	bin := filepath.Join(t.TempDir(), "vpc-route-publisher")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/vpc-route-publisher")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the publisher: %v\n%s", err, out)
	}
	help, _ := run(t, bin, "run", "--help") // --help may exit non-zero; the text is what matters
	// Our flags come first; component-base's logging flags follow under
	// their own heading, and only --logging-format and -v of those are
	// chart values.
	own, _, ok := bytes.Cut(help, []byte("\nLogging flags:\n"))
	if !ok {
		t.Fatalf("run --help has no logging flags section:\n%s", help)
	}
	flags := regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z0-9_-]+)`).FindAllSubmatch(own, -1)
	flags = append(flags, [][]byte{nil, []byte("logging-format")})
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	chart, err := os.ReadFile("helm/vpc-route-publisher/templates/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"v": true}
	for _, f := range flags {
		known[string(f[1])] = true
	}
	chartFlags := map[string]bool{}
	for _, f := range regexp.MustCompile(`include "vrp.flagEnv" \(list "([a-z0-9-]+)"`).FindAllSubmatch(chart, -1) {
		chartFlags[string(f[1])] = true
		if !known[string(f[1])] {
			t.Errorf("the chart sets the variable of --%s, which `run` does not accept", f[1])
		}
	}
	base, err := os.ReadFile("base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range regexp.MustCompile(`name: VPC_ROUTE_PUBLISHER_([A-Z0-9_]+)`).FindAllSubmatch(base, -1) {
		if flag := strings.ToLower(strings.ReplaceAll(string(f[1]), "_", "-")); !known[flag] {
			t.Errorf("the kustomize base sets VPC_ROUTE_PUBLISHER_%s, which names no flag of `run`", f[1])
		}
	}
	if !strings.Contains(string(help), "[$VPC_ROUTE_PUBLISHER_CLUSTER_ID]") {
		t.Errorf("run --help does not name the flags' variables:\n%s", help)
	}
	n := 0
	for _, f := range flags {
		name := string(f[1])
		if klogFlag(name) || name == "help" {
			continue
		}
		if name == "once" {
			// One pass and exit: for jobs and CI, never a Deployment.
			if !regexp.MustCompile("(?m)^\\|[^\n]*`--once`").Match(readme) {
				t.Error("flag --once is not in the README's configuration reference")
			}
			continue
		}
		n++
		if !regexp.MustCompile("(?m)^\\|[^\n]*`--" + regexp.QuoteMeta(name) + "`").Match(readme) {
			t.Errorf("flag --%s is not in the README's configuration reference", name)
		}
		if !chartFlags[name] {
			t.Errorf("flag --%s is not in the chart's environment (vrp.flagEnv)", name)
		}
	}
	if n < 30 {
		t.Fatalf("found only %d flags in `run --help`:\n%s", n, help)
	}
}
