package tracker

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
)

// Routes reports which of the wanted routes (destination → next hop) are
// Available in the cloud. cloudsim.Cloud implements it.
type Routes interface {
	Available(want map[netip.Prefix]string) (map[netip.Prefix]bool, error)
}

// Outcome is how far a fleet got.
type Outcome struct {
	// Converged is true when every route was Available and every node's
	// condition cleared before the deadline.
	Converged bool
	// Routes and Nodes count the routes seen Available and the nodes seen
	// with NetworkUnavailable=False.
	Routes, Nodes, Total int
	// RoutesDone and NodesDone are the times, from the start, at which the
	// last route became Available and the last condition was cleared (so
	// far, when not converged).
	RoutesDone, NodesDone time.Duration
	// Elapsed is the later of RoutesDone and NodesDone when converged, and
	// the time waited otherwise.
	Elapsed time.Duration
	// Progress records, each time more routes were seen Available, how
	// many and when (from the start).
	Progress []Point
}

// Point is the number of routes Available at a time since the start.
type Point struct {
	At     time.Duration
	Routes int
}

// Watch says how to wait for a fleet.
type Watch struct {
	Routes     Routes
	Conditions *Conditions
	// Poll is how often the cloud is read.
	Poll time.Duration
	// Alive reports an error once the controller under test has died, so
	// that the wait ends at once with it.
	Alive func() error
	// Progress, when set, is called about every ProgressEvery with the
	// outcome so far.
	Progress      func(Outcome)
	ProgressEvery time.Duration
}

// Fleet waits until every member's route is Available and its condition
// cleared, or until timeout. Times are measured from start. Reaching the
// timeout is not an error: the outcome says how far the fleet got.
func (w Watch) Fleet(ctx context.Context, members []kubelet.Member, start time.Time, timeout time.Duration) (Outcome, error) {
	want := make(map[netip.Prefix]string, len(members))
	for _, m := range members {
		want[m.PodCIDR] = m.InstanceID
	}
	out := Outcome{Total: len(members)}
	seen := make(map[netip.Prefix]bool, len(members))
	deadline := start.Add(timeout)
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	lastProgress := time.Now()
	for {
		now := time.Now()
		if w.Alive != nil {
			if err := w.Alive(); err != nil {
				return out, err
			}
		}
		avail, err := w.Routes.Available(want)
		if err != nil {
			return out, err
		}
		for dst := range avail {
			if !seen[dst] {
				seen[dst] = true
				out.RoutesDone = now.Sub(start)
			}
		}
		if len(seen) > out.Routes {
			out.Progress = append(out.Progress, Point{At: now.Sub(start), Routes: len(seen)})
		}
		out.Routes = len(seen)
		out.Nodes = 0
		for _, m := range members {
			if at, ok := w.Conditions.ClearedAt(m.Name); ok {
				out.Nodes++
				out.NodesDone = max(out.NodesDone, at.Sub(start))
			}
		}
		if out.Routes == out.Total && out.Nodes == out.Total {
			out.Converged = true
			out.Elapsed = max(out.RoutesDone, out.NodesDone)
			return out, nil
		}
		if w.Progress != nil && now.Sub(lastProgress) >= w.ProgressEvery {
			lastProgress = now
			o := out
			o.Elapsed = now.Sub(start)
			w.Progress(o)
		}
		if !now.Before(deadline) {
			out.Elapsed = now.Sub(start)
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("waiting for %d routes: %w", len(members), ctx.Err())
		case <-ticker.C:
		}
	}
}

// Route waits until one member's route is Available and returns when it was
// first seen, measured from start.
func (w Watch) Route(ctx context.Context, m kubelet.Member, start time.Time, timeout time.Duration) (time.Duration, error) {
	want := map[netip.Prefix]string{m.PodCIDR: m.InstanceID}
	deadline := start.Add(timeout)
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	for {
		now := time.Now()
		if w.Alive != nil {
			if err := w.Alive(); err != nil {
				return 0, err
			}
		}
		avail, err := w.Routes.Available(want)
		if err != nil {
			return 0, err
		}
		if avail[m.PodCIDR] {
			return now.Sub(start), nil
		}
		if !now.Before(deadline) {
			return 0, fmt.Errorf("route %s → %s of node %s not Available after %v", m.PodCIDR, m.InstanceID, m.Name, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for the route of node %s: %w", m.Name, ctx.Err())
		case <-ticker.C:
		}
	}
}

// Unrouted waits until the informer shows every named node with
// NetworkUnavailable True, so that a measurement never starts from a state
// a previous controller left behind.
func (w Watch) Unrouted(ctx context.Context, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(w.Poll)
	defer ticker.Stop()
	for {
		left := 0
		for _, n := range names {
			if !w.Conditions.Unrouted(n) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes still without NetworkUnavailable=True after %v", left, len(names), timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for nodes to be unrouted: %w", ctx.Err())
		case <-ticker.C:
		}
	}
}
