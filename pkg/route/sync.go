package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// passState is the controller's memory between passes. It is not needed for
// correctness (the cloud is the memory of what exists): it only avoids
// repeating events and measures convergence latency.
type passState struct {
	// firstSeen is when each node's destination was first seen by a pass.
	firstSeen map[string]seenRoute
	// warned are the warning events emitted and still current.
	warned map[string]bool
	// unpublished are nodes seen with routes not yet in sync.
	unpublished map[string]bool
	// tripped are the causes the valve withheld at the last pass.
	tripped map[string]bool
}

type seenRoute struct {
	at        time.Time
	converged bool
}

func newPassState() *passState {
	return &passState{firstSeen: map[string]seenRoute{}, warned: map[string]bool{}, unpublished: map[string]bool{}, tripped: map[string]bool{}}
}

// Audit reads the sources and the tables and reports what a pass would do,
// without writing anything, patching nodes or emitting events, and without
// the leader lease. It waits for the caches the controller reads; the
// caller must have started the informers.
func (c *Controller) Audit(ctx context.Context) (*Report, error) {
	if !cache.WaitForCacheSync(ctx.Done(), append([]cache.InformerSynced{c.informer.HasSynced}, c.synced...)...) {
		return nil, fmt.Errorf("waiting for caches: %w", context.Cause(ctx))
	}
	obs, err := c.observe(ctx)
	if err != nil {
		return nil, err
	}
	rep := c.buildReport(obs, nil)
	rep.DryRun = true
	return rep, nil
}

// Results of a pass, the result label of reconciles_total.
const (
	// ResultSuccess: the pass ran and every entry was placed.
	ResultSuccess = "success"
	// ResultPartial: the pass ran, but some entries failed (a full table,
	// a refused write, a node whose instance lookup failed). Those are
	// problems of their nodes; the pass itself is healthy.
	ResultPartial = "partial"
	// ResultError: the pass could not run: the route tables, the entries
	// or the desired state could not be read (credentials, network, API),
	// or it was interrupted.
	ResultError = "error"
)

// sync is one pass: observe, plan, apply (unless dry-run), then update node
// conditions, events and metrics. It returns an error when anything failed,
// so the pass is retried; per-entry failures never stop the other entries.
// A pass that could read everything and made its writes counts as run
// (last_successful_sync_timestamp_seconds) even when some entries failed:
// those are reported as problems, not as a stale controller.
func (c *Controller) sync(ctx context.Context) (err error) {
	start := c.clock.Now()
	logger := klog.FromContext(ctx)
	ran := false
	defer func() {
		c.metrics.ReconcileDuration.Observe(c.clock.Since(start).Seconds())
		switch {
		case !ran:
			c.metrics.Reconciles.WithLabelValues(ResultError).Inc()
			return
		case err != nil:
			c.metrics.Reconciles.WithLabelValues(ResultPartial).Inc()
		default:
			c.metrics.Reconciles.WithLabelValues(ResultSuccess).Inc()
		}
		now := c.clock.Now()
		c.lastSync.Store(&now)
		c.metrics.LastSuccessfulSync.Set(float64(now.UnixNano()) / 1e9)
	}()

	obs, err := c.observe(ctx)
	if err != nil {
		return err
	}
	plan := obs.plan
	logger.V(2).Info("Planned", "create", len(plan.Create), "delete", len(plan.Delete), "adopt", len(plan.Adopt),
		"inSync", len(plan.InSync), "pending", len(plan.Pending), "conflicts", len(plan.Conflicts), "owned", plan.Owned)
	if plan.SafetyValveTripped {
		logger.Error(nil, "Safety valve tripped: withholding deletions", "causes", plan.Valve.Tripped, "withheld", len(plan.Withheld),
			"owned", plan.Owned, "windowBase", plan.Valve.Base, "windowRemaining", plan.Valve.Remaining, "maxDeleteRatio", c.cfg.Policy.MaxDeleteRatio)
	}

	errs := obs.errs
	var out *outcome
	if c.cfg.DryRun {
		if !plan.Empty() {
			logger.Info("Dry run: not writing", "create", routeStrings(plan.Create), "delete", routeStrings(plan.Delete), "adopt", routeStrings(plan.Adopt))
		}
	} else if !plan.Empty() {
		out = newOutcome()
		errs = append(errs, c.apply(ctx, plan, out)...)
	}
	errs = append(errs, c.disableSourceDestChecks(ctx, obs)...)
	next := c.valveWindow().Record(c.clock.Now(), plan.Owned, notDesiredDeleted(plan, out), c.cfg.Policy.SafetyValveWindow)
	c.window.Store(&next)
	if ctx.Err() != nil {
		// Leadership lost mid-pass: stop here. The cloud holds what was
		// written; the next leader's first pass lists it and finishes.
		return errors.Join(append(errs, context.Cause(ctx))...)
	}

	ran = true
	rep := c.buildReport(obs, out)
	rep.DryRun = c.cfg.DryRun
	c.lastReport.Store(rep)
	c.publishMetrics(rep)
	c.observeConvergence(obs, rep)
	if !c.cfg.DryRun && c.cfg.SetNodeCondition {
		errs = append(errs, c.updateConditions(ctx, rep)...)
	}
	c.emitEvents(ctx, obs, rep, out)
	c.emitSourceDestEvents(obs, rep)
	switch {
	case rep.Counts()[StatePending] > 0 || hasTransitional(plan.Pending):
		// Entries are settling: look again soon (backing off while they
		// stay so) rather than at the next resync, so that node
		// conditions follow promptly.
		c.requeueAfter(c.retry.When(pendingKey))
	default:
		c.retry.Forget(pendingKey)
	}
	logger.Info("Pass done", "summary", rep.Summary(), "duration", c.clock.Since(start))
	return errors.Join(errs...)
}

// valveWindow returns the safety valve's memory of earlier passes. Audit
// reads it while the worker writes it: each pass stores a new window.
func (c *Controller) valveWindow() ValveWindow {
	if w := c.window.Load(); w != nil {
		return *w
	}
	return ValveWindow{}
}

// notDesiredDeleted counts the CauseNotDesired deletions the writes made:
// what the valve's window spends.
func notDesiredDeleted(plan Plan, out *outcome) int {
	if out == nil {
		return 0
	}
	n := 0
	for _, r := range plan.Delete {
		if r.Cause == CauseNotDesired && out.deleted[r.Key()] {
			n++
		}
	}
	return n
}

// pendingKey tracks, in the retry limiter, how long entries have been
// settling.
const pendingKey = "pending"

func hasTransitional(rs []Route) bool {
	return slices.ContainsFunc(rs, transitional)
}

// requeueAfter schedules a pass, if the controller runs.
func (c *Controller) requeueAfter(d time.Duration) {
	if q := c.queue.Load(); q != nil {
		(*q).AddAfter(workKey, d)
	}
}

func routeStrings(rs []Route) []string {
	s := make([]string, 0, len(rs))
	for _, r := range rs {
		s = append(s, r.String())
	}
	return s
}

// buildReport turns an observation, and what the writes achieved (nil when
// nothing was written), into the state of every route.
func (c *Controller) buildReport(obs *observation, out *outcome) *Report {
	if out == nil {
		out = newOutcome()
	}
	plan := obs.plan
	rep := &Report{
		ClusterID:          c.cfg.Policy.ClusterID,
		Owned:              plan.Owned,
		SafetyValveTripped: plan.SafetyValveTripped,
		Valve:              plan.Valve,
		Withheld:           plan.Withheld,
		Conflicts:          plan.Conflicts,
		Problems:           slices.Clone(obs.problems),
		Notes:              slices.Clone(obs.notes),
	}

	byKey := func(rs []Route) map[Key]Route {
		m := make(map[Key]Route, len(rs))
		for _, r := range rs {
			m[r.Key()] = r
		}
		return m
	}
	inSync, pending, deletes := byKey(plan.InSync), byKey(plan.Pending), byKey(plan.Delete)
	creates, adopts, withheld, deferred := byKey(plan.Create), byKey(plan.Adopt), byKey(plan.Withheld), byKey(plan.Deferred)
	conflicts := map[Key]Conflict{}
	for _, cf := range plan.Conflicts {
		conflicts[cf.Desired.Key()] = cf
	}

	seen := map[Key]bool{}
	for _, d := range obs.desired {
		k := d.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		rr := RouteReport{Node: d.Node, Table: d.Table, Destination: d.Destination.String(), NextHop: d.NextHop}
		fail, failed := out.failed[k]
		switch {
		case conflicts[k].Reason != "":
			cf := conflicts[k]
			rr.State, rr.EntryID, rr.Detail = StateConflict, cf.Existing.EntryID, cf.Message()
		case adopts[k].Table != "":
			rr.EntryID = adopts[k].EntryID
			switch {
			case out.adopted[k].Table != "":
				rr.State = StateInSync
			case failed:
				rr.State, rr.Detail = StateFailed, fail.err.Error()
			default:
				rr.State, rr.Detail = StateAdoptable, "unmarked matching entry; it will be adopted"
			}
		case inSync[k].Table != "" && obs.kept[k]:
			rr.State, rr.EntryID = StateUnverified, inSync[k].EntryID
			rr.Detail = "the node's instance cannot be looked up; its entry is kept, not verified"
		case inSync[k].Table != "":
			rr.State, rr.EntryID = StateInSync, inSync[k].EntryID
		case creates[k].Table != "":
			created, ok := out.created[k]
			switch {
			case ok && created.Status != "" && created.Status != StatusAvailable:
				rr.State, rr.EntryID, rr.Detail = StatePending, created.EntryID, "created, entry is "+created.Status
			case ok:
				rr.State, rr.EntryID = StateInSync, created.EntryID
			case failed && errors.Is(fail.err, ErrNotAvailable):
				rr.State, rr.Detail = StatePending, fail.err.Error()
			case failed:
				rr.State, rr.Detail = StateFailed, fail.err.Error()
			case deletes[k].Table != "":
				rr.State, rr.EntryID = StateWrongNextHop, deletes[k].EntryID
				rr.Detail = "our entry routes to " + deletes[k].NextHop + "; it will be replaced"
			default:
				rr.State, rr.Detail = StateMissing, "no entry; it will be created"
			}
		case deferred[k].Table != "" && withheld[k].Table != "":
			rr.State, rr.EntryID = StateWithheld, withheld[k].EntryID
			rr.Detail = "our entry routes to " + withheld[k].NextHop + "; replacing it is withheld by the safety valve"
		case deferred[k].Table != "" || pending[k].Table != "":
			p := pending[k]
			rr.State, rr.EntryID, rr.Detail = StatePending, p.EntryID, "entry is "+p.Status+"; waiting for it to settle"
		default:
			continue // refused by Diff: reported as a problem
		}
		rep.Routes = append(rep.Routes, rr)
	}
	slices.SortFunc(rep.Routes, func(a, b RouteReport) int {
		if a.Node != b.Node {
			return cmpString(a.Node, b.Node)
		}
		if a.Destination != b.Destination {
			return cmpString(a.Destination, b.Destination)
		}
		return cmpString(a.Table, b.Table)
	})

	// Unexpected: owned entries that are not the desired entry of their
	// slot, and still there after this pass.
	want := desiredByKey(obs.desired)
	for _, rs := range [][]Route{plan.Delete, plan.Withheld, plan.Pending} {
		for _, r := range rs {
			if out.deleted[r.Key()] || !c.cfg.Policy.Owns(r) {
				continue
			}
			if d, ok := want[r.Key()]; ok && d.NextHop == r.NextHop {
				continue // a desired entry in transition
			}
			rep.Unexpected = append(rep.Unexpected, r)
		}
	}
	slices.SortFunc(rep.Unexpected, compareRoutes)

	// Blackholes: owned entries left pointing at an instance that cannot
	// forward.
	if obs.status != nil {
		for _, rs := range [][]Route{plan.InSync, plan.Pending, plan.Delete, plan.Withheld} {
			for _, r := range rs {
				if !c.cfg.Policy.Owns(r) {
					continue
				}
				st, exists := obs.status[r.NextHop]
				if exists && st != InstanceStopped && st != InstanceAbsent {
					continue
				}
				b := Blackhole{Route: r, InstanceStatus: st, Action: "kept"}
				if !exists {
					b.InstanceStatus = "Released"
				}
				switch {
				case out.deleted[r.Key()]:
					b.Action = "deleted"
				case withheld[r.Key()].Table != "":
					b.Action = "withheld"
				case deletes[r.Key()].Table != "" && !c.cfg.DryRun:
					b.Action = "delete failed"
				case deletes[r.Key()].Table != "":
					b.Action = "to delete"
				}
				rep.Blackholes = append(rep.Blackholes, b)
			}
		}
		slices.SortFunc(rep.Blackholes, func(a, b Blackhole) int { return compareRoutes(a.Route, b.Route) })
	}

	// Write failures are problems of their node.
	for _, k := range sortedFailures(out.failed) {
		f := out.failed[k]
		if errors.Is(f.err, ErrNotAvailable) {
			continue // still settling: reported as pending
		}
		reason := ReasonWriteFailed
		if errors.Is(f.err, ErrQuotaExceeded) {
			reason = ReasonQuotaExceeded
		}
		obj := "Node/" + f.route.Node
		if f.route.Node == "" {
			obj = "RouteTable/" + f.route.Table
		}
		rep.Problems = append(rep.Problems, Problem{Object: obj, Node: f.route.Node, Reason: reason, Message: failureMessage(f)})
	}

	// Tables and their quota after the writes.
	used := map[string]int{}
	for _, r := range obs.current {
		if !out.deleted[r.Key()] {
			used[r.Table]++
		}
	}
	for k := range out.created {
		used[k.Table]++
	}
	for _, t := range obs.tables {
		tr := TableReport{TableInfo: t, Used: used[t.ID]}
		if t.Quota > 0 {
			h := t.Quota - tr.Used
			tr.Headroom = &h
		}
		rep.Tables = append(rep.Tables, tr)
	}
	c.markSourceDestChecks(rep, obs)
	return rep.withEmptyLists()
}

func desiredByKey(rs []Route) map[Key]Route {
	m := make(map[Key]Route, len(rs))
	for _, r := range rs {
		m[r.Key()] = r
	}
	return m
}

func sortedFailures(m map[Key]writeFailure) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int {
		return compareRoutes(Route{Table: a.Table, Destination: a.Destination}, Route{Table: b.Table, Destination: b.Destination})
	})
	return keys
}

// failureMessage explains a failed write in one sentence, with the cloud's
// error code when there is one.
func failureMessage(f writeFailure) string {
	msg := fmt.Sprintf("%s route %s failed", opVerb(f.op), f.route)
	if code := ErrorCode(f.err); code != "" {
		msg += " with " + code
	}
	return msg + ": " + f.err.Error()
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// publishMetrics sets the drift gauges from the report.
func (c *Controller) publishMetrics(rep *Report) {
	counts := map[string]tableCounts{}
	for _, t := range rep.Tables {
		counts[t.ID] = tableCounts{Entries: map[string]int{}, QuotaUsed: t.Used, Quota: t.Quota}
	}
	inc := func(table, state string) {
		if tc, ok := counts[table]; ok {
			tc.Entries[state]++
		}
	}
	for _, rr := range rep.Routes {
		inc(rr.Table, EntriesDesired)
		switch rr.State {
		case StateInSync:
			inc(rr.Table, EntriesPresent)
		case StatePending, StateUnverified:
			inc(rr.Table, EntriesPending)
		case StateConflict:
			inc(rr.Table, EntriesConflicting)
		case StateSourceDestCheck:
			inc(rr.Table, EntriesSourceDestCheck)
		default:
			inc(rr.Table, EntriesMissing)
		}
	}
	for _, u := range rep.Unexpected {
		inc(u.Table, EntriesUnexpected)
	}
	for _, b := range rep.Blackholes {
		if b.Action != "deleted" {
			inc(b.Route.Table, EntriesBlackhole)
		}
	}
	c.metrics.setTables(counts)
	c.metrics.setProblems(rep.Problems)
	tripped := map[string]bool{}
	for _, cause := range rep.Valve.Tripped {
		tripped[cause] = true
		if !c.state.tripped[cause] {
			c.metrics.SafetyValveTrips.WithLabelValues(cause).Inc()
		}
	}
	c.state.tripped = tripped
	c.metrics.setValve(rep.Valve, tripped)
	c.metrics.DryRun.Set(boolFloat(c.cfg.DryRun))
}

// observeConvergence records, for every node destination, how long it took
// from first being seen to being in sync in every table. Destinations
// already in sync when first seen (e.g. after a restart) are not measured.
func (c *Controller) observeConvergence(obs *observation, rep *Report) {
	now := c.clock.Now()
	synced := map[string]bool{}
	for _, rr := range rep.Routes {
		k := rr.Node + "|" + rr.Destination
		if _, ok := synced[k]; !ok {
			synced[k] = true
		}
		synced[k] = synced[k] && rr.State == StateInSync
	}
	before := map[string]bool{}
	inSyncBefore := map[Key]bool{}
	for _, r := range obs.plan.InSync {
		inSyncBefore[r.Key()] = true
	}
	for _, d := range obs.desired {
		k := d.Node + "|" + d.Destination.String()
		if _, ok := before[k]; !ok {
			before[k] = true
		}
		before[k] = before[k] && inSyncBefore[d.Key()]
	}
	current := map[string]bool{}
	noticed := c.noticed.take()
	for _, r := range obs.sourced {
		k := r.Node + "|" + r.Destination.String()
		current[k] = true
		s, ok := c.state.firstSeen[k]
		if !ok {
			s = seenRoute{at: now, converged: before[k] && synced[k]}
			if at, ok := noticed[r.Node]; ok && at.Before(now) {
				s.at = at
			}
		}
		if !s.converged && synced[k] {
			c.metrics.Convergence.Observe(now.Sub(s.at).Seconds())
			s.converged = true
		}
		c.state.firstSeen[k] = s
	}
	for k := range c.state.firstSeen {
		if !current[k] {
			delete(c.state.firstSeen, k)
		}
	}
}

// noticedNodes is when node events arrived, between the informer's
// goroutine that notes them and the worker that takes them.
type noticedNodes struct {
	mu sync.Mutex
	at map[string]time.Time
}

// note keeps the earliest time a change of the node was seen.
func (n *noticedNodes) note(node string, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.at == nil {
		n.at = map[string]time.Time{}
	}
	if _, ok := n.at[node]; !ok {
		n.at[node] = at
	}
}

// take returns the times noted since the last take and forgets them.
func (n *noticedNodes) take() map[string]time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	at := n.at
	n.at = nil
	return at
}
