package route

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Policy is what Diff needs to know besides the two states: whose entries
// are ours and how much it may delete in one pass.
type Policy struct {
	// ClusterID is the cluster named in the ownership marker of our entries.
	ClusterID string
	// ClusterCIDRs guard ownership: an entry is ours only if its destination
	// lies inside one of them, whatever its marker says. Desired routes
	// outside them are refused (they could never be garbage-collected).
	ClusterCIDRs []netip.Prefix
	// MaxDeleteRatio is the safety valve: the fraction of the owned entries
	// that may be deleted, per pass for deletions whose node is gone or
	// whose instance was released, per SafetyValveWindow for deletions of
	// routes of nodes that still exist. 1 or more disables the valve; 0
	// withholds every deletion that spans more than one node.
	MaxDeleteRatio float64
	// SafetyValveWindow is the sliding window over which the deletions of
	// routes of existing nodes are bounded (see Diff).
	SafetyValveWindow time.Duration
	// AdoptUnmarked lets the publisher take over unmarked Instance entries
	// inside the cluster CIDRs that exactly match a desired route (migration
	// from the cloud-controller-manager).
	AdoptUnmarked bool
}

// Owns reports whether an entry listed from the cloud belongs to this
// cluster: it carries our cluster ID in its marker, routes to an instance,
// and its destination lies inside a cluster CIDR.
func (p Policy) Owns(r Route) bool {
	return p.ClusterID != "" && r.Owner == p.ClusterID && r.IsInstance() && p.InClusterCIDR(r.Destination)
}

// InClusterCIDR reports whether the prefix lies entirely inside one of the
// cluster CIDRs.
func (p Policy) InClusterCIDR(dst netip.Prefix) bool {
	if !dst.IsValid() {
		return false
	}
	dst = dst.Masked()
	for _, c := range p.ClusterCIDRs {
		if c.Addr().Is4() == dst.Addr().Is4() && c.Bits() <= dst.Bits() && c.Contains(dst.Addr()) {
			return true
		}
	}
	return false
}

// Conflict reasons: why an entry on a desired destination is not ours.
const (
	// ConflictUnmarked: the entry carries no ownership marker.
	ConflictUnmarked = "Unmarked"
	// ConflictOtherCluster: the entry is marked by another cluster.
	ConflictOtherCluster = "OtherCluster"
	// ConflictNextHopType: the entry routes to something other than an
	// ECS instance (VPN gateway, NAT gateway, ENI, ...).
	ConflictNextHopType = "NextHopType"
)

// Problem reasons produced by the route package. They are bounded and used
// as event reasons' details and as the reason label of the problems metric.
const (
	// ReasonOutsideClusterCIDR: a desired destination is not inside any
	// cluster CIDR, so an entry for it could never be recognised as ours.
	ReasonOutsideClusterCIDR = "OutsideClusterCIDR"
	// ReasonDuplicateCIDR: two nodes want the same destination.
	ReasonDuplicateCIDR = "DuplicateCIDR"
	// ReasonNodeNotFound: the source names a node that does not exist.
	ReasonNodeNotFound = "NodeNotFound"
	// ReasonNoInstance: the node cannot be mapped to an ECS instance yet.
	ReasonNoInstance = "NoInstance"
	// ReasonInstanceLookupFailed: mapping the node to its instance failed.
	ReasonInstanceLookupFailed = "InstanceLookupFailed"
	// ReasonInstanceReleased: the node's ECS instance no longer exists.
	ReasonInstanceReleased = "InstanceReleased"
	// ReasonQuotaExceeded: the node's route did not fit in a route table.
	ReasonQuotaExceeded = "QuotaExceeded"
	// ReasonWriteFailed: writing the node's route failed for another reason.
	ReasonWriteFailed = "WriteFailed"
	// ReasonConflict: a foreign entry occupies the node's destination.
	ReasonConflict = "Conflict"
)

// Conflict is a desired route whose slot is held by an entry that is not
// ours. It is reported, never clobbered.
type Conflict struct {
	// Desired is the route we want.
	Desired Route `json:"desired"`
	// Existing is the foreign entry occupying its slot.
	Existing Route `json:"existing"`
	// Reason is one of the Conflict* constants.
	Reason string `json:"reason"`
}

// Message explains the conflict in one sentence.
func (c Conflict) Message() string {
	why := ""
	switch c.Reason {
	case ConflictUnmarked:
		why = "carries no ownership marker"
		if c.Existing.NextHop == c.Desired.NextHop && c.Existing.IsInstance() {
			why += " (it matches; enable --adopt-unmarked to take it over)"
		}
	case ConflictOtherCluster:
		why = fmt.Sprintf("is owned by cluster %q", c.Existing.Owner)
	case ConflictNextHopType:
		why = fmt.Sprintf("routes to a %s", c.Existing.NextHopType)
	}
	entry := "an entry"
	if c.Existing.EntryID != "" {
		entry = "entry " + c.Existing.EntryID
	}
	return fmt.Sprintf("destination %s in route table %s is already routed to %s by %s, which %s",
		c.Desired.Destination, c.Desired.Table, c.Existing.NextHop, entry, why)
}

// Plan is the outcome of Diff: the writes that bring the route tables to the
// desired state, and the state of everything else. It holds no
// configuration and no inputs, only results.
type Plan struct {
	// Create are desired routes to write. A key also in Delete is a
	// replacement (wrong next hop): the delete must happen first.
	Create []Route `json:"create,omitempty"`
	// Delete are owned entries to remove: stale (node gone, CIDR changed,
	// instance released) or routed to the wrong next hop.
	Delete []Route `json:"delete,omitempty"`
	// Adopt are unmarked entries (current side, Node set from the desired
	// route) to stamp with our marker.
	Adopt []Route `json:"adopt,omitempty"`
	// Conflicts are desired routes blocked by foreign entries.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// InSync are owned, Available entries matching a desired route.
	InSync []Route `json:"inSync,omitempty"`
	// Pending are entries in a transitional state (Pending, Modifying,
	// Deleting) that block a write on their slot; the next pass decides.
	Pending []Route `json:"pending,omitempty"`
	// Deferred are desired routes not created this pass because their slot
	// is still held by an owned entry that cannot be deleted now (pending,
	// or its deletion withheld by the safety valve).
	Deferred []Route `json:"deferred,omitempty"`
	// Withheld are the deletions the safety valve held back.
	Withheld []Route `json:"withheld,omitempty"`
	// SafetyValveTripped is set when the valve withheld deletions, of any
	// cause; Valve says which and how much budget is left.
	SafetyValveTripped bool `json:"safetyValveTripped,omitempty"`
	// Valve is the state of the safety valve after this plan.
	Valve ValveState `json:"valve"`
	// Owned is the number of owned entries found in the tables.
	Owned int `json:"owned"`
	// Problems are desired routes Diff refused (outside the cluster CIDRs,
	// claimed by two nodes).
	Problems []Problem `json:"problems,omitempty"`
}

// Empty reports whether the plan has no write to make.
func (p Plan) Empty() bool {
	return len(p.Create) == 0 && len(p.Delete) == 0 && len(p.Adopt) == 0
}

// Diff computes the writes that make current match desired under policy p,
// given the facts f about nodes and instances and the valve's memory. It is
// pure: no I/O, no clock (f.Now is an input), deterministic output order.
//
// Rules, in the order they apply to a slot (table, destination):
//   - A desired destination outside the cluster CIDRs, or claimed by two
//     nodes, is a Problem; its slot is left as it is.
//   - An entry we do not own (Policy.Owns) is never deleted or modified. On
//     a desired slot it is a Conflict, except that with AdoptUnmarked an
//     unmarked Instance entry matching the desired route exactly is adopted.
//   - An owned entry in a transitional status is Pending: no write on its
//     slot this pass.
//   - An owned Available entry matching the desired route is InSync; one
//     with another next hop is deleted and the desired route re-created;
//     one on an undesired slot is deleted.
//   - A desired route on an empty slot is created.
//
// Every deletion has a cause (Route.Cause), and the safety valve bounds each
// cause by the evidence behind it:
//   - CauseNodeDeleted (the node named by the entry's marker no longer
//     exists) and CauseInstanceReleased (its next hop is gone): per pass. A
//     pass deleting more than MaxDeleteRatio of the owned entries for more
//     than one node withholds those deletions; deleting nodes one at a
//     time, however fast, is never held.
//   - CauseNotDesired (the node exists but the source no longer wants the
//     route: a pool, CRD, label or CIDR changed): over the sliding window
//     SafetyValveWindow. Within a window at most MaxDeleteRatio of the
//     owned entries counted at the window's start may be deleted, whatever
//     the number of passes or steps; entries created since never enlarge
//     that base. A pass whose deletions do not fit the budget left makes
//     none of them, except that one node's entries may go when nothing was
//     deleted in the window yet (so a one-node cluster can lose its node).
//
// Creates on the slots of withheld deletions are deferred; the other
// creates proceed.
func Diff(desired, current []Route, p Policy, f Facts) Plan {
	var plan Plan
	want, problems := desiredSlots(desired, p)
	plan.Problems = problems

	byKey := map[Key][]Route{}
	for _, c := range current {
		c.Destination = c.Destination.Masked()
		byKey[c.Key()] = append(byKey[c.Key()], c)
		if p.Owns(c) {
			plan.Owned++
		}
	}

	for _, c := range current {
		c.Destination = c.Destination.Masked()
		d, desiredHere := want[c.Key()]
		if d.contested {
			continue
		}
		if !p.Owns(c) {
			if !desiredHere {
				continue // foreign, not in our way: none of our business
			}
			switch {
			case p.AdoptUnmarked && c.Owner == "" && c.IsInstance() && p.InClusterCIDR(c.Destination) && c.NextHop == d.NextHop:
				if transitional(c) {
					plan.Pending = append(plan.Pending, c)
				} else {
					c.Node = d.Node
					plan.Adopt = append(plan.Adopt, c)
				}
			default:
				plan.Conflicts = append(plan.Conflicts, Conflict{Desired: d.Route, Existing: c, Reason: conflictReason(c, p)})
			}
			continue
		}
		switch {
		case transitional(c):
			plan.Pending = append(plan.Pending, c)
		case desiredHere && c.NextHop == d.NextHop:
			plan.InSync = append(plan.InSync, c)
		default:
			plan.Delete = append(plan.Delete, c)
		}
	}

	for k, d := range want {
		if d.contested {
			continue
		}
		switch slotState(byKey[k], d.Route, p) {
		case slotFree:
			plan.Create = append(plan.Create, d.Route)
		case slotBusy:
			plan.Deferred = append(plan.Deferred, d.Route)
		}
	}

	for i := range plan.Delete {
		plan.Delete[i].Cause = f.cause(plan.Delete[i])
	}
	applyValve(&plan, p, f)

	for _, rs := range [][]Route{plan.Create, plan.Delete, plan.Adopt, plan.InSync, plan.Pending, plan.Deferred, plan.Withheld} {
		slices.SortFunc(rs, compareRoutes)
	}
	slices.SortFunc(plan.Conflicts, func(a, b Conflict) int { return compareRoutes(a.Desired, b.Desired) })
	slices.SortFunc(plan.Problems, compareProblems)
	return plan
}

type wantedRoute struct {
	Route
	contested bool
}

// desiredSlots indexes the desired routes by slot, refusing those Diff
// cannot honour.
func desiredSlots(desired []Route, p Policy) (map[Key]wantedRoute, []Problem) {
	want := map[Key]wantedRoute{}
	var problems []Problem
	seen := map[Problem]bool{}
	report := func(pr Problem) {
		if !seen[pr] {
			seen[pr] = true
			problems = append(problems, pr)
		}
	}
	claimants := map[Key][]Route{}
	for _, d := range desired {
		d.Destination = d.Destination.Masked()
		if !p.InClusterCIDR(d.Destination) {
			report(Problem{
				Object: "Node/" + d.Node, Node: d.Node, Reason: ReasonOutsideClusterCIDR,
				Message: fmt.Sprintf("pod CIDR %s of node %s is outside the cluster CIDRs %v; no route is published for it", d.Destination, d.Node, p.ClusterCIDRs),
			})
			continue
		}
		k := d.Key()
		prev, ok := want[k]
		if !ok {
			want[k] = wantedRoute{Route: d}
			claimants[k] = []Route{d}
			continue
		}
		if prev.Node == d.Node && prev.NextHop == d.NextHop {
			continue // the same route twice
		}
		prev.contested = true
		want[k] = prev
		claimants[k] = append(claimants[k], d)
	}
	for k, w := range want {
		if !w.contested {
			continue
		}
		var nodes []string
		for _, c := range claimants[k] {
			nodes = append(nodes, c.Node)
		}
		slices.Sort(nodes)
		nodes = slices.Compact(nodes)
		for _, n := range nodes {
			report(Problem{
				Object: "Node/" + n, Node: n, Reason: ReasonDuplicateCIDR,
				Message: fmt.Sprintf("pod CIDR %s is claimed by several nodes (%v); no route is changed for it until only one claims it", k.Destination, nodes),
			})
		}
	}
	return want, problems
}

type slot int

const (
	slotFree slot = iota // nothing there, or only an owned entry to replace
	slotBusy             // an owned entry in transition: wait
	slotDone             // in sync, adopted, or blocked by a conflict
)

// slotState decides whether a desired route can be created on its slot.
func slotState(entries []Route, d Route, p Policy) slot {
	state := slotFree
	for _, c := range entries {
		if !p.Owns(c) {
			return slotDone
		}
		if c.NextHop == d.NextHop && c.Status != StatusDeleting {
			return slotDone // in sync, or becoming so
		}
		if transitional(c) {
			state = slotBusy
		}
	}
	return state
}

func transitional(r Route) bool {
	return r.Status != "" && r.Status != StatusAvailable
}

func conflictReason(c Route, p Policy) string {
	switch {
	case c.Owner == "":
		return ConflictUnmarked
	case !c.IsInstance():
		return ConflictNextHopType
	case c.Owner != p.ClusterID:
		return ConflictOtherCluster
	default:
		// Our marker on a destination outside the cluster CIDRs cannot
		// happen for a desired slot (desired routes are inside them); treat
		// it like any foreign entry.
		return ConflictOtherCluster
	}
}

// Causes of a deletion: the evidence that an owned entry is not wanted.
const (
	// CauseNodeDeleted: the node named by the entry's marker is gone.
	CauseNodeDeleted = "node-deleted"
	// CauseNotDesired: the node exists, but the source no longer wants
	// this route (a pool, CRD, label or CIDR changed, or its next hop).
	CauseNotDesired = "not-desired"
	// CauseInstanceReleased: the entry's next hop instance was released.
	CauseInstanceReleased = "instance-released"
)

// Causes lists the causes of deletion, in the order they are reported.
var Causes = []string{CauseNodeDeleted, CauseNotDesired, CauseInstanceReleased}

// Facts are what Kubernetes and the cloud say about the owned entries'
// nodes and instances, and the valve's memory of earlier passes.
type Facts struct {
	// Nodes are the names of the nodes that exist. When nil, no node is
	// known to be gone and every deletion counts as CauseNotDesired.
	Nodes map[string]bool
	// Released are the instances known to be released.
	Released map[string]bool
	// Now is the time of the pass, for the valve's window.
	Now time.Time
	// Window is the valve's memory of the deletions of earlier passes.
	Window ValveWindow
}

// cause classifies the deletion of an owned entry.
func (f Facts) cause(r Route) string {
	switch {
	case f.Nodes != nil && r.Node != "" && !f.Nodes[r.Node]:
		return CauseNodeDeleted
	case f.Released[r.NextHop]:
		return CauseInstanceReleased
	default:
		return CauseNotDesired
	}
}

// ValveWindow is the valve's memory across passes: one sample per pass that
// ran, the oldest kept being the last one at or before the window's start.
type ValveWindow struct {
	Samples []ValveSample `json:"samples,omitempty"`
}

// ValveSample is what one pass owned and deleted for CauseNotDesired.
type ValveSample struct {
	At      time.Time `json:"at"`
	Owned   int       `json:"owned"`
	Deleted int       `json:"deleted"`
}

// Record returns the window with a pass at now that owned entries before
// its writes and deleted deleted of them for CauseNotDesired, forgetting
// the samples the window of length d no longer needs.
func (w ValveWindow) Record(now time.Time, owned, deleted int, d time.Duration) ValveWindow {
	samples := append(slices.Clone(w.Samples), ValveSample{At: now, Owned: owned, Deleted: deleted})
	start := now.Add(-d)
	// Keep the last sample at or before the start: it holds the base.
	first := 0
	for i, s := range samples {
		if !s.At.After(start) {
			first = i
		}
	}
	return ValveWindow{Samples: samples[first:]}
}

// budget returns the owned count at the window's start and the
// CauseNotDesired deletions made within the window. Without a sample at or
// before the start (the window is younger than d, e.g. after a restart) the
// oldest sample's count is the base, and owned when there is none.
func (w ValveWindow) budget(now time.Time, d time.Duration, owned int) (base, deleted int) {
	start := now.Add(-d)
	base = owned
	for i, s := range w.Samples {
		if i == 0 || !s.At.After(start) {
			base = s.Owned
		}
		if s.At.After(start) {
			deleted += s.Deleted
		}
	}
	return base, deleted
}

// ValveState is the safety valve's state after a plan: what it withheld
// and the budget of the CauseNotDesired window.
type ValveState struct {
	// Tripped are the causes whose deletions were withheld, in Causes order.
	Tripped []string `json:"tripped"`
	// Window is the length of the CauseNotDesired window.
	Window string `json:"window"`
	// Base is the number of owned entries at the window's start.
	Base int `json:"base"`
	// Deleted is the number of CauseNotDesired deletions made in the window
	// before this pass.
	Deleted int `json:"deleted"`
	// Remaining is how many CauseNotDesired deletions the window still
	// allows after this plan; -1 when the valve is disabled.
	Remaining int `json:"remaining"`
}

// applyValve withholds the deletions the safety valve does not allow, as
// documented on Diff, and defers the creates on their slots.
func applyValve(plan *Plan, p Policy, f Facts) {
	base, deleted := f.Window.budget(f.Now, p.SafetyValveWindow, plan.Owned)
	plan.Valve = ValveState{Window: p.SafetyValveWindow.String(), Base: base, Deleted: deleted, Remaining: -1, Tripped: []string{}}
	byCause := map[string][]Route{}
	for _, r := range plan.Delete {
		byCause[r.Cause] = append(byCause[r.Cause], r)
	}
	allowed := math.Inf(1)
	if p.MaxDeleteRatio < 1 {
		allowed = p.MaxDeleteRatio*float64(base) - float64(deleted)
	}
	held := map[Key]bool{}
	for _, cause := range Causes {
		rs := byCause[cause]
		var trips bool
		switch cause {
		case CauseNotDesired:
			fits := float64(len(rs)) <= allowed || deleted == 0 && len(nodesOf(rs)) <= 1
			trips = len(rs) > 0 && !fits && p.MaxDeleteRatio < 1
			if !trips && !math.IsInf(allowed, 1) {
				allowed -= float64(len(rs))
			}
		default:
			trips = valveTrips(rs, plan.Owned, p.MaxDeleteRatio)
		}
		if trips {
			plan.Valve.Tripped = append(plan.Valve.Tripped, cause)
			for _, r := range rs {
				held[r.Key()] = true
			}
		}
	}
	if !math.IsInf(allowed, 1) {
		plan.Valve.Remaining = max(0, int(math.Floor(allowed)))
	}
	if len(held) == 0 {
		return
	}
	plan.SafetyValveTripped = true
	plan.Delete, plan.Withheld = moveHeld(plan.Delete, plan.Withheld, held)
	plan.Create, plan.Deferred = moveHeld(plan.Create, plan.Deferred, held)
}

// moveHeld moves the routes of rs on held slots to to, in place.
func moveHeld(rs, to []Route, held map[Key]bool) (kept, moved []Route) {
	kept = rs[:0]
	for _, r := range rs {
		if held[r.Key()] {
			to = append(to, r)
		} else {
			kept = append(kept, r)
		}
	}
	return kept, to
}

// valveTrips is the per-pass rule: more than ratio of the owned entries,
// for more than one node.
func valveTrips(deletes []Route, owned int, ratio float64) bool {
	if len(deletes) == 0 || ratio >= 1 || float64(len(deletes)) <= ratio*float64(owned) {
		return false
	}
	return len(nodesOf(deletes)) > 1
}

// nodesOf returns the nodes of the routes; an entry without a node counts
// as a node of its own.
func nodesOf(rs []Route) map[string]bool {
	nodes := map[string]bool{}
	for _, r := range rs {
		n := r.Node
		if n == "" {
			n = r.Destination.String()
		}
		nodes[n] = true
	}
	return nodes
}

func compareRoutes(a, b Route) int {
	return cmp.Or(
		cmp.Compare(a.Table, b.Table),
		a.Destination.Addr().Compare(b.Destination.Addr()),
		cmp.Compare(a.Destination.Bits(), b.Destination.Bits()),
		cmp.Compare(a.NextHop, b.NextHop),
		cmp.Compare(a.EntryID, b.EntryID),
	)
}

func compareProblems(a, b Problem) int {
	return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Message, b.Message))
}
