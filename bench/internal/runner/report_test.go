package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/tracker"
)

func sampleResults() *Results {
	cfg := DefaultConfig()
	return &Results{
		Cold: []*ColdResult{{
			N: 1000, Bound: cfg.Model.LowerBound(1000),
			Publisher: &ColdRun{Outcome: tracker.Outcome{Converged: true, Routes: 1000, Nodes: 1000, Total: 1000, Elapsed: 6600 * time.Millisecond, RoutesDone: 6100 * time.Millisecond, NodesDone: 6600 * time.Millisecond},
				Calls: cloudsim.Calls{"CreateRouteEntries": 20, "DescribeRouteEntryList": 40}},
			Upstream: &ColdRun{Outcome: tracker.Outcome{Routes: 250, Total: 1000, RoutesDone: 60 * time.Second, Elapsed: 66 * time.Second,
				Progress: []tracker.Point{{At: 10 * time.Second, Routes: 50}, {At: 40 * time.Second, Routes: 200}, {At: 60 * time.Second, Routes: 250}}},
				Calls: cloudsim.Calls{"CreateRouteEntries": 250}, Errors: map[string]int{"CreateRouteEntries/TaskConflict": 7}},
		}, {
			N: 5000, Bound: cfg.Model.LowerBound(5000),
			Publisher: &ColdRun{Outcome: tracker.Outcome{Converged: true, Total: 5000, Elapsed: 33 * time.Second}},
		}},
		Join: []JoinResult{
			{Who: whoPublisher, N: 1000, Samples: []time.Duration{600 * time.Millisecond, 900 * time.Millisecond}, Target: 1702 * time.Millisecond},
			{Who: whoUpstream, N: 200, Samples: []time.Duration{5 * time.Second}},
		},
		Steady: []SteadyResult{{Who: whoPublisher, N: 1020, Periods: 6, Passes: 6,
			Calls: cloudsim.Calls{"DescribeRouteEntryList": 66}, PagesPerListing: 11, Tables: 1}},
		Cost: []CostResult{{N: 5000, CPU: 4200 * time.Millisecond, PeakRSS: 48 << 20, ResyncCPU: 35 * time.Millisecond},
			{N: 9000, CPU: time.Minute, PeakRSS: 80 << 20, ResyncCPU: -1}},
		Notes: []string{"something skipped"},
	}
}

func TestLines(t *testing.T) {
	got := strings.Join(sampleResults().Lines(), "\n")
	for _, want := range []string{
		"bench cold N=1000 publisher_s=6.6 upstream_s=>66.0 upstream_extrapolated_s=360.0 bound_s=6.0 ratio_to_bound=1.10 routes_ratio_to_bound=1.02 speedup=>10.0 speedup_extrapolated=54.5 publisher_routes_s=6.1 publisher_conditions_s=6.6 publisher_writes=20 publisher_calls=60 upstream_writes=250 upstream_calls=250",
		"bench cold N=5000 publisher_s=33.0 bound_s=30.0 ratio_to_bound=1.10 routes_ratio_to_bound=0.00 publisher_routes_s=0.0 publisher_conditions_s=0.0 publisher_writes=0 publisher_calls=0",
		"bench join N=1000 p50_s=0.60 p99_s=0.90 samples=2 target_p99_s=1.70",
		"bench join N=200 upstream_p50_s=5.00 upstream_p99_s=5.00 upstream_samples=1",
		"bench steady N=1020 writes_per_resync=0.00 lists_per_resync=1.00 list_calls_per_resync=11.00 resyncs=6.0",
		"bench cost N=5000 cpu_s=4.20 peak_rss_mib=48.0 resync_cpu_ms=35.0",
		"bench cost N=9000 cpu_s=60.00 peak_rss_mib=80.0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lines lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "peak_rss_mib=80.0 resync_cpu_ms") {
		t.Error("an unmeasured resync is reported")
	}
}

func TestReportEndsWithTheMachineLines(t *testing.T) {
	r := sampleResults()
	var buf bytes.Buffer
	if err := r.Report(&buf, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimRight(buf.String(), "\n")
	lines := strings.Split(out, "\n")
	tail := lines[len(lines)-len(r.Lines()):]
	for _, l := range tail {
		if !strings.HasPrefix(l, "bench ") {
			t.Errorf("last lines are not all machine-readable: %q", l)
		}
	}
	for _, want := range []string{"note: something skipped", "CreateRouteEntries/TaskConflict:7", "> 66.00s (250/1000 routes), ~360.00s extrapolated"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestExtrapolated(t *testing.T) {
	done := &ColdRun{Outcome: tracker.Outcome{Converged: true, Routes: 10, Total: 10, RoutesDone: time.Second,
		Progress: []tracker.Point{{At: time.Second, Routes: 10}}}}
	if done.Extrapolated() != 0 {
		t.Error("a converged run was extrapolated")
	}
	none := &ColdRun{Outcome: tracker.Outcome{Total: 10}}
	if none.Extrapolated() != 0 {
		t.Error("a run without progress was extrapolated")
	}
	// Steady: 5 routes per 10s all along; 10 left at 30s take 20s more.
	steady := &ColdRun{Outcome: tracker.Outcome{Routes: 15, Total: 25, RoutesDone: 30 * time.Second, Progress: []tracker.Point{
		{At: 10 * time.Second, Routes: 5}, {At: 20 * time.Second, Routes: 10}, {At: 30 * time.Second, Routes: 15}}}}
	if got := steady.Extrapolated(); got != 50*time.Second {
		t.Errorf("steady Extrapolated = %v, want 50s", got)
	}
	// Slowing down: the recent rate (1 route per 10s) decides, not the
	// average (about 3.7 per 10s).
	slowing := &ColdRun{Outcome: tracker.Outcome{Routes: 11, Total: 13, RoutesDone: 30 * time.Second, Progress: []tracker.Point{
		{At: 10 * time.Second, Routes: 9}, {At: 20 * time.Second, Routes: 10}, {At: 30 * time.Second, Routes: 11}}}}
	if got := slowing.Extrapolated(); got != 50*time.Second {
		t.Errorf("slowing Extrapolated = %v, want 50s", got)
	}
}

func TestConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if got := cfg.sizes(); len(got) != 3 || got[0] != 200 || got[1] != 1000 || got[2] != 5000 {
		t.Errorf("sizes = %v, want [200 1000 5000]", got)
	}
	for name, mutate := range map[string]func(*Config){
		"too big":     func(c *Config) { c.CostSizes = []int{9000} },
		"nothing":     func(c *Config) { c.ColdSizes, c.CostSizes, c.Joins, c.UpstreamJoins = nil, nil, 0, 0 },
		"zero resync": func(c *Config) { c.ResyncPeriod = 0 },
		"bad model":   func(c *Config) { c.Model.MaxBatch = 0 },
		"no timeout":  func(c *Config) { c.UpstreamTimeout = 0 },
		"negative":    func(c *Config) { c.ColdSizes = []int{-1} },
	} {
		c := DefaultConfig()
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
}

func TestJoinTargetFollowsTheCoalescingWindow(t *testing.T) {
	b := &bench{cfg: DefaultConfig()}
	if got, want := b.joinTarget(), 1702*time.Millisecond; got != want {
		t.Errorf("default join target %v, want %v", got, want)
	}
	b.cfg.PublisherArgs = []string{"--sync-coalesce=100ms"}
	if got, want := b.joinTarget(), 1302*time.Millisecond; got != want {
		t.Errorf("join target with a 100ms window %v, want %v", got, want)
	}
}

func TestJoinGaps(t *testing.T) {
	a, b := joinGaps(20, 10*time.Second), joinGaps(20, 10*time.Second)
	var sum time.Duration
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("join gaps differ between runs")
		}
		if a[i] < 0 || a[i] >= 10*time.Second {
			t.Fatalf("gap %v outside [0, 10s)", a[i])
		}
		sum += a[i]
	}
	if mean := sum / 20; mean < 2*time.Second || mean > 8*time.Second {
		t.Errorf("mean gap %v is not spread over the period", mean)
	}
}
