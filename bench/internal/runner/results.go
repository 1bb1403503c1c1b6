package runner

import (
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/tracker"
)

// Contestants.
const (
	whoPublisher = "publisher"
	whoUpstream  = "upstream"
)

// Results are everything one benchmark run measured.
type Results struct {
	Cold   []*ColdResult
	Join   []JoinResult
	Steady []SteadyResult
	Cost   []CostResult
	// Notes explain cases that could not be measured.
	Notes []string
}

// ColdResult is the cold start of one fleet size.
type ColdResult struct {
	N int
	// Bound is the physical lower bound of writing N routes, under the
	// latency model of Profile ("" for the benchmark's own model).
	Bound     time.Duration
	Profile   string
	Publisher *ColdRun
	Upstream  *ColdRun
}

// ColdRun is one contestant's cold start.
type ColdRun struct {
	Outcome tracker.Outcome
	// Calls are the cloud API calls by action, all result codes; Errors the
	// failed ones by action and code.
	Calls  cloudsim.Calls
	Errors map[string]int
	// Timeout is the bound the run was given.
	Timeout time.Duration
}

// Extrapolated estimates, for a run that hit its bound, when every route
// would have been Available: the routes still missing at the rate of the
// last third of the run (a controller that slows down as the table grows
// is not flattered by its fast start). Zero when it cannot be estimated.
func (r *ColdRun) Extrapolated() time.Duration {
	o := r.Outcome
	if o.Converged || o.Routes == 0 || o.RoutesDone <= 0 || len(o.Progress) == 0 {
		return 0
	}
	last := o.Progress[len(o.Progress)-1]
	from := tracker.Point{}
	for _, p := range o.Progress {
		if p.At <= last.At*2/3 {
			from = p
		}
	}
	if last.At <= from.At || last.Routes <= from.Routes {
		return 0
	}
	rate := float64(last.Routes-from.Routes) / (last.At - from.At).Seconds()
	missing := float64(o.Total - last.Routes)
	return last.At + time.Duration(missing/rate*float64(time.Second))
}

// result returns the run's convergence time and whether it is exact (false:
// the run hit its bound and the time is a lower bound of the truth).
func (r *ColdRun) result() (time.Duration, bool) {
	if r.Outcome.Converged {
		return r.Outcome.Elapsed, true
	}
	return r.Outcome.Elapsed, false
}

// JoinResult is the join latency of one contestant.
type JoinResult struct {
	Who string
	// N is the fleet size the nodes joined.
	N int
	// Samples are the times from node creation to route Available.
	Samples []time.Duration
	// Target is the latency the publisher must stay under at p99.
	Target time.Duration
}

// SteadyResult is the cloud traffic of a converged fleet with nothing
// changing.
type SteadyResult struct {
	Who string
	N   int
	// Periods is how many resync (or reconcile) periods the window lasted.
	Periods float64
	// Passes is how many reconcile passes the controller reported in the
	// window (publisher only; -1 when not known).
	Passes float64
	Calls  cloudsim.Calls
	// PagesPerListing is how many DescribeRouteEntryList calls one full
	// listing of a table takes.
	PagesPerListing int
	Tables          int
}

// CostResult is the publisher's resource use with N nodes.
type CostResult struct {
	N int
	// CPU is the CPU time from process start to convergence.
	CPU time.Duration
	// PeakRSS is VmHWM at the end of the run, in bytes.
	PeakRSS uint64
	// ResyncCPU is the CPU time of the steady window divided by its
	// periods: the cost of one resync, idle work included. Negative when
	// not measured (the publisher did not converge).
	ResyncCPU time.Duration
	// Window is the length of the steady window ResyncCPU comes from.
	Window time.Duration
}
