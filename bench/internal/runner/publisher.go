package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/procstat"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/stats"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/tracker"
	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// publisherProcess is a running vpc-route-publisher.
type publisherProcess struct {
	*framework.Process
	metricsURL string
}

// startPublisher starts `vpc-route-publisher run` against the simulator,
// without leader election, with the admin kubeconfig (RBAC is not what is
// measured), its default settings otherwise and the run's resync period.
func (b *bench) startPublisher(c *cloudsim.Cloud, n int, quota int) (*publisherProcess, error) {
	metricsAddr, err := framework.FreeAddr()
	if err != nil {
		return nil, err
	}
	healthAddr, err := framework.FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{
		"run",
		"--kubeconfig=" + b.cp.AdminKubeconfig,
		"--cluster-id=" + clusterID,
		"--cluster-cidr=" + clusterCIDR.String(),
		"--leader-elect=false",
		"--resync-period=" + b.cfg.ResyncPeriod.String(),
		"--metrics-bind-address=" + metricsAddr,
		"--health-bind-address=" + healthAddr,
	}
	args = append(args, c.PublisherArgs(b.credsDir, quota)...)
	args = append(args, b.cfg.PublisherArgs...)
	p, err := framework.StartProcess(fmt.Sprintf("publisher-%d", n), filepath.Join(b.cfg.WorkDir, "logs"),
		b.cfg.PublisherBin, args, nil)
	if err != nil {
		return nil, err
	}
	return &publisherProcess{Process: p, metricsURL: "http://" + metricsAddr}, nil
}

// alive reports an error, with the log's tail, once the process has exited.
func (p *publisherProcess) alive() error {
	if exited, err := p.Exited(); exited {
		if err == nil {
			err = errors.New("exit status 0")
		}
		return fmt.Errorf("vpc-route-publisher exited (%w); log tail:\n%s", err, p.LogTail(30))
	}
	return nil
}

// passes reads the publisher's reconcile counter; -1 when unavailable.
func (p *publisherProcess) passes(ctx context.Context) float64 {
	m, err := framework.ScrapeMetrics(ctx, p.metricsURL+"/metrics")
	if err != nil {
		return -1
	}
	v, ok := m.Value("vpc_route_publisher_reconciles_total", nil)
	if !ok {
		return -1
	}
	return v
}

// publisherSession runs one publisher process on a fleet of n nodes and
// measures, in order, the cold start, the joins, the steady window and the
// process's cost.
func (b *bench) publisherSession(ctx context.Context, n int, cs sessionCases) (err error) {
	members := b.fleet.Members(0, n)
	if err := b.resetConditions(ctx, members); err != nil {
		return err
	}
	joins := 0
	if cs.join {
		joins = b.cfg.Joins
	}
	quota := n + joins + quotaHeadroom
	cloud, err := b.startCloud(n, joins)
	if err != nil {
		return err
	}
	defer func() { _ = cloud.Stop(context.Background()) }()

	b.logf("publisher: cold start with %d nodes (bound %.1fs)", n, b.cfg.Model.LowerBound(n).Seconds())
	start := time.Now()
	p, err := b.startPublisher(cloud, n, quota)
	if err != nil {
		return err
	}
	var joined []kubelet.Member
	defer func() {
		if serr := p.Stop(framework.DefaultStopTimeout); serr != nil {
			err = errors.Join(err, serr)
		}
		if rerr := b.removeJoined(context.Background(), joined); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	watch := tracker.Watch{
		Routes: cloud, Conditions: b.conds, Poll: 50 * time.Millisecond, Alive: p.alive,
		ProgressEvery: 10 * time.Second,
		Progress: func(o tracker.Outcome) {
			b.logf("publisher: %d/%d routes Available, %d/%d conditions cleared after %.1fs", o.Routes, o.Total, o.Nodes, o.Total, o.Elapsed.Seconds())
		},
	}
	out, err := watch.Fleet(ctx, members, start, b.cfg.PublisherTimeout)
	if err != nil {
		return err
	}
	sample, err := procstat.Read(p.PID())
	if err != nil {
		return err
	}
	b.logf("publisher: %d nodes converged=%v in %.2fs (routes %.2fs, conditions %.2fs), CPU %.2fs",
		n, out.Converged, out.Elapsed.Seconds(), out.RoutesDone.Seconds(), out.NodesDone.Seconds(), sample.CPU.Seconds())
	if cs.cold || cs.cost {
		b.coldResult(n).Publisher = &ColdRun{Outcome: out, Calls: cloud.Calls(), Errors: cloud.Errors(), Timeout: b.cfg.PublisherTimeout}
	}
	if !out.Converged {
		b.results.Notes = append(b.results.Notes, fmt.Sprintf("publisher did not converge with %d nodes within %v; later cases at this size skipped", n, b.cfg.PublisherTimeout))
		if cs.cost {
			// Memory is still worth knowing; a resync cannot be measured.
			b.results.Cost = append(b.results.Cost, CostResult{N: n, CPU: sample.CPU, PeakRSS: sample.PeakRSS, ResyncCPU: -1})
		}
		return nil
	}

	if cs.join {
		watch.Poll = 10 * time.Millisecond
		res := JoinResult{Who: whoPublisher, N: n, Target: b.joinTarget()}
		if err := b.joinOneByOne(ctx, watch, &res, joins, time.Second, time.Minute, &joined); err != nil {
			return err
		}
	}

	if cs.steady {
		// Let the last join's condition update and any pass in flight
		// finish before the window opens.
		if err := waitFor(ctx, b.cfg.ResyncPeriod); err != nil {
			return err
		}
		window := time.Duration(b.cfg.SteadyResyncs) * b.cfg.ResyncPeriod
		calls0, passes0 := cloud.Calls(), p.passes(ctx)
		cpu0, err := procstat.Read(p.PID())
		if err != nil {
			return err
		}
		var profile []byte
		profDone := make(chan error, 1)
		go func() {
			var perr error
			profile, perr = fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.metricsURL, int(window.Seconds())), window+30*time.Second)
			profDone <- perr
		}()
		perfDone := make(chan error, 1)
		perfData := filepath.Join(b.cfg.WorkDir, "profiles", fmt.Sprintf("publisher-%d-steady.perf.data", n))
		if b.cfg.Perf {
			go func() { perfDone <- perfRecord(ctx, p.PID(), window, perfData) }()
		} else {
			perfDone <- errPerfOff
		}
		if err := waitFor(ctx, window); err != nil {
			return err
		}
		calls1, passes1 := cloud.Calls(), p.passes(ctx)
		cpu1, err := procstat.Read(p.PID())
		if err != nil {
			return err
		}
		if err := p.alive(); err != nil {
			return err
		}
		entries, err := cloud.CustomEntries()
		if err != nil {
			return err
		}
		periods := window.Seconds() / b.cfg.ResyncPeriod.Seconds()
		sr := SteadyResult{Who: whoPublisher, N: n + len(joined), Periods: periods, Passes: -1, Calls: calls1.Sub(calls0),
			PagesPerListing: pagesPerListing(entries), Tables: 1}
		if passes0 >= 0 && passes1 >= 0 {
			sr.Passes = passes1 - passes0
		}
		b.results.Steady = append(b.results.Steady, sr)
		b.logf("publisher: steady window %v with %d nodes: %s", window, n+len(joined), sr.Calls)
		if cs.cost {
			cr := CostResult{N: n, CPU: sample.CPU, ResyncCPU: time.Duration(float64(cpu1.CPU-cpu0.CPU) / periods), Window: window}
			if final, err := procstat.Read(p.PID()); err == nil {
				cr.PeakRSS = final.PeakRSS
			}
			b.results.Cost = append(b.results.Cost, cr)
			b.logf("publisher: cost with %d nodes: CPU to converge %.2fs, per resync %.1fms, peak RSS %.1f MiB",
				n, cr.CPU.Seconds(), float64(cr.ResyncCPU)/float64(time.Millisecond), float64(cr.PeakRSS)/(1<<20))
		}
		if perr := <-profDone; perr != nil {
			b.logf("publisher: no CPU profile of the steady window (%v)", perr)
		} else {
			path := filepath.Join(b.cfg.WorkDir, "profiles", fmt.Sprintf("publisher-%d-steady.cpu.pprof", n))
			if err := writeFile(path, profile); err != nil {
				return err
			}
			b.logf("publisher: CPU profile of the steady window in %s", path)
		}
		if perr := <-perfDone; perr == nil {
			report, err := perfReport(ctx, perfData)
			if err != nil {
				b.logf("publisher: perf report: %v", err)
			} else {
				b.logf("publisher: perf CPU profile of the steady window with %d nodes (%s):\n%s", n, perfData+".txt", report)
			}
		} else if !errors.Is(perr, errPerfOff) {
			b.logf("publisher: no perf profile: %v", perr)
		}
		if heap, err := fetch(ctx, p.metricsURL+"/debug/pprof/heap", 30*time.Second); err == nil {
			path := filepath.Join(b.cfg.WorkDir, "profiles", fmt.Sprintf("publisher-%d.heap.pprof", n))
			if err := writeFile(path, heap); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinTarget is the p99 join latency the publisher must stay under: one
// write of one entry, the coalescing window and a second.
// joinOneByOne joins joins nodes after the res.N converged ones, one at a
// time with pauses spread over spread, and records into res how long each
// took from its creation to its route being Available (at most timeout).
// The joined nodes are appended to joined, for the session's clean-up.
func (b *bench) joinOneByOne(ctx context.Context, watch tracker.Watch, res *JoinResult, joins int, spread, timeout time.Duration, joined *[]kubelet.Member) error {
	gaps := joinGaps(joins, spread)
	for j := range joins {
		if err := waitFor(ctx, gaps[j]); err != nil {
			return err
		}
		m := b.fleet.Member(res.N + j)
		t0 := time.Now()
		if err := b.reg.Join(ctx, m); err != nil {
			return err
		}
		*joined = append(*joined, m)
		d, err := watch.Route(ctx, m, t0, timeout)
		if err != nil {
			return err
		}
		res.Samples = append(res.Samples, d)
	}
	p50, _ := stats.Percentile(res.Samples, 50)
	p99, _ := stats.Percentile(res.Samples, 99)
	b.logf("%s: %d joins into %d nodes: p50 %.2fs p99 %.2fs", res.Who, joins, res.N, p50.Seconds(), p99.Seconds())
	b.results.Join = append(b.results.Join, *res)
	return nil
}

func (b *bench) joinTarget() time.Duration {
	return b.cfg.Model.Write(1) + coalesceWindow(b.cfg.PublisherArgs) + time.Second
}

func (b *bench) coldResult(n int) *ColdResult {
	for _, r := range b.results.Cold {
		if r.N == n {
			return r
		}
	}
	r := &ColdResult{N: n, Bound: b.cfg.Model.LowerBound(n), Profile: b.cfg.Profile}
	b.results.Cold = append(b.results.Cold, r)
	return r
}

// fetch GETs url and returns the body of a 200 answer.
func fetch(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return body, nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
