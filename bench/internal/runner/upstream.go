package runner

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/tracker"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/upstream"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
)

// upstreamSession runs the upstream route controller on a fleet of n nodes:
// cold start, then (when asked and converged) joins and a steady window.
func (b *bench) upstreamSession(ctx context.Context, n int, cs sessionCases) (err error) {
	members := b.fleet.Members(0, n)
	if err := b.resetConditions(ctx, members); err != nil {
		return err
	}
	joins := 0
	if cs.join {
		joins = b.cfg.UpstreamJoins
	}
	quota := n + joins + quotaHeadroom
	sim, err := b.startCloud(n, joins)
	if err != nil {
		return err
	}
	defer func() { _ = sim.Stop(context.Background()) }()

	opts := b.adapterOptions(sim, quota)
	b.logf("upstream: cold start with %d nodes (bound %.1fs, giving up after %v)", n, b.cfg.Model.LowerBound(n).Seconds(), b.cfg.UpstreamTimeout)
	start := time.Now()
	ctrl, err := upstream.Start(ctx, upstream.Options{
		Kube: b.cp.Admin, Cloud: opts, ClusterID: clusterID,
		ClusterCIDRs: []netip.Prefix{clusterCIDR}, ReconcilePeriod: b.cfg.UpstreamPeriod,
	})
	if err != nil {
		return err
	}
	var joined []kubelet.Member
	defer func() {
		if serr := ctrl.Stop(time.Minute); serr != nil {
			err = errors.Join(err, serr)
		}
		if rerr := b.removeJoined(context.Background(), joined); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	watch := tracker.Watch{
		Routes: sim, Conditions: b.conds, Poll: 100 * time.Millisecond,
		ProgressEvery: 15 * time.Second,
		Progress: func(o tracker.Outcome) {
			b.logf("upstream: %d/%d routes Available, %d/%d conditions cleared after %.1fs", o.Routes, o.Total, o.Nodes, o.Total, o.Elapsed.Seconds())
		},
	}
	out, err := watch.Fleet(ctx, members, start, b.cfg.UpstreamTimeout)
	if err != nil {
		return err
	}
	run := &ColdRun{Outcome: out, Calls: sim.Calls(), Errors: sim.Errors(), Timeout: b.cfg.UpstreamTimeout}
	if cs.cold {
		b.coldResult(n).Upstream = run
	}
	b.logf("upstream: %d nodes converged=%v in %.1fs (%d routes, %d conditions); calls %s; errors %v",
		n, out.Converged, out.Elapsed.Seconds(), out.Routes, out.Nodes, run.Calls, run.Errors)
	if !out.Converged {
		if cs.join || cs.steady {
			b.results.Notes = append(b.results.Notes, fmt.Sprintf("upstream did not converge with %d nodes within %v: no join or steady measurement at this size", n, b.cfg.UpstreamTimeout))
		}
		return nil
	}

	if cs.join {
		watch.Poll = 20 * time.Millisecond
		res := JoinResult{Who: whoUpstream, N: n}
		if err := b.joinOneByOne(ctx, watch, &res, joins, b.cfg.UpstreamPeriod, 2*time.Minute, &joined); err != nil {
			return err
		}
	}

	if cs.steady {
		if err := waitFor(ctx, b.cfg.UpstreamPeriod); err != nil {
			return err
		}
		window := time.Duration(b.cfg.UpstreamSteadyPeriods) * b.cfg.UpstreamPeriod
		calls0 := sim.Calls()
		if err := waitFor(ctx, window); err != nil {
			return err
		}
		entries, err := sim.CustomEntries()
		if err != nil {
			return err
		}
		sr := SteadyResult{Who: whoUpstream, N: n + len(joined), Periods: float64(b.cfg.UpstreamSteadyPeriods), Passes: -1,
			Calls: sim.Calls().Sub(calls0), PagesPerListing: pagesPerListing(entries), Tables: 1}
		b.results.Steady = append(b.results.Steady, sr)
		b.logf("upstream: steady window %v with %d nodes: %s", window, sr.N, sr.Calls)
	}
	return nil
}

// adapterOptions are the cloud options of the adapter: the publisher's
// defaults, pointed at the simulator exactly as the publisher's flags are.
func (b *bench) adapterOptions(c *cloudsim.Cloud, quota int) *cloud.Options {
	o := cloud.NewOptions()
	o.Region, o.VPCID = c.Region, c.VPCID
	o.VPCEndpoint, o.ECSEndpoint, o.STSEndpoint = c.APIAddr, c.APIAddr, c.APIAddr
	o.MetadataEndpoint = c.MetadataURL
	o.InsecureHTTP = true
	o.CredentialsDir = b.credsDir
	o.RouteTableQuota = quota
	return o
}

// coalesceWindow is the publisher's --sync-coalesce among args, or its
// default.
func coalesceWindow(args []string) time.Duration {
	d := 500 * time.Millisecond
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--sync-coalesce="); ok {
			if parsed, err := time.ParseDuration(v); err == nil {
				d = parsed
			}
		}
	}
	return d
}
