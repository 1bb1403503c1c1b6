package route

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// observation is everything a pass reads, and the plan made from it. Run
// and Audit share it: Audit stops here, Run goes on to apply the plan.
type observation struct {
	tables []TableInfo
	// current are the entries listed from the tables.
	current []Route
	// sourced are the source's routes of the nodes that should have one
	// (existing, not excluded): Node and Destination.
	sourced []Route
	// desired are the routes Diff was given: resolved and expanded into
	// every table.
	desired []Route
	// nodes are the nodes with desired routes, from the lister (read-only).
	nodes map[string]*corev1.Node
	// status is the status of the instances of desired and owned routes;
	// nil when it could not be read.
	status map[string]string
	// kept are the slots of owned entries kept for nodes whose instance
	// could not be looked up: unverified, never published.
	kept map[Key]bool
	// existing are the names of every node, for the causes of deletions.
	existing map[string]bool
	problems []Problem
	// notes are the source's notes (NoteSource), for the report.
	notes []Note
	// errs are per-node failures that did not stop the pass but make it
	// fail (so that it is retried).
	errs []error
	plan Plan
	// sourceDest are the ENI source/destination checks of the desired
	// routes' instances; nil when not looked at (ignore mode).
	sourceDest *sourceDestState
}

// observe reads the desired and current state and plans. Errors reading
// whole inputs (tables, source) fail the pass; per-node failures become
// problems and keep the node's existing routes.
func (c *Controller) observe(ctx context.Context) (*observation, error) {
	logger := klog.FromContext(ctx)
	tables, err := c.table.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing route tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, errors.New("no route table selected")
	}
	current, err := c.table.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing route entries: %w", err)
	}
	sourced, problems, err := c.source.Routes(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading desired routes: %w", err)
	}
	obs := &observation{tables: tables, current: current, problems: problems, nodes: map[string]*corev1.Node{}}
	if ns, ok := c.source.(NoteSource); ok {
		obs.notes = ns.Notes()
	}
	all, err := c.nodes.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	obs.existing = make(map[string]bool, len(all))
	for _, n := range all {
		obs.existing[n.Name] = true
	}

	owned := map[netip.Prefix][]Route{}
	for _, r := range current {
		if c.cfg.Policy.Owns(r) {
			owned[r.Destination.Masked()] = append(owned[r.Destination.Masked()], r)
		}
	}

	byNode := map[string][]Route{}
	for _, r := range sourced {
		byNode[r.Node] = append(byNode[r.Node], r)
	}
	// resolved are desired routes with a next hop, not yet expanded; kept
	// are existing owned entries of nodes that could not be resolved.
	var resolved, kept []Route
	obs.kept = map[Key]bool{}
	for _, name := range sortedKeys(byNode) {
		routes := byNode[name]
		n, err := c.nodes.Get(name)
		if apierrors.IsNotFound(err) {
			obs.problems = append(obs.problems, Problem{
				Object: "Node/" + name, Node: name, Reason: ReasonNodeNotFound,
				Message: fmt.Sprintf("the route source names node %s, which does not exist", name),
			})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getting node %s: %w", name, err)
		}
		if c.excluded(n) {
			continue
		}
		obs.nodes[name] = n
		for _, r := range routes {
			obs.sourced = append(obs.sourced, Route{Node: name, Destination: r.Destination.Masked()})
		}
		id, err := c.resolver.InstanceID(ctx, nodeRef(n))
		if err != nil {
			reason := ReasonNoInstance
			msg := fmt.Sprintf("node %s has no known ECS instance yet (providerID %q); its route waits: %v", name, n.Spec.ProviderID, err)
			if !errors.Is(err, ErrNoInstance) {
				reason = ReasonInstanceLookupFailed
				msg = fmt.Sprintf("looking up the ECS instance of node %s failed: %v", name, err)
				obs.errs = append(obs.errs, fmt.Errorf("resolving the instance of node %s: %w", name, err))
			}
			obs.problems = append(obs.problems, Problem{Object: "Node/" + name, Node: name, Reason: reason, Message: msg})
			// Not knowing the instance is no reason to remove the
			// node's routes: keep the owned entries whose marker names
			// this node (and its last known instance), never another
			// node's entry on a reused CIDR.
			last, known := c.resolver.lastKnown(name)
			for _, r := range routes {
				for _, e := range owned[r.Destination.Masked()] {
					if e.Node != name || known && e.NextHop != last {
						continue
					}
					k := Route{Table: e.Table, Destination: e.Destination.Masked(), NextHop: e.NextHop, Node: name}
					kept = append(kept, k)
					obs.kept[k.Key()] = true
				}
			}
			continue
		}
		for _, r := range routes {
			resolved = append(resolved, Route{Destination: r.Destination.Masked(), NextHop: id, Node: name})
		}
	}
	c.resolver.retain(mapKeys(obs.nodes))

	var ids []string
	for _, r := range resolved {
		ids = append(ids, r.NextHop)
	}
	for _, rs := range owned {
		for _, r := range rs {
			ids = append(ids, r.NextHop)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > 0 {
		status, err := c.instances.Status(ctx, ids)
		if err != nil {
			// Blackhole detection is a report; it must not stop routes
			// from being published.
			logger.Error(err, "Reading instance status; blackholes are not reported this pass")
		} else {
			obs.status = status
		}
	}
	if obs.status != nil {
		released := map[string]bool{}
		resolved = slices.DeleteFunc(resolved, func(r Route) bool {
			if _, ok := obs.status[r.NextHop]; ok {
				return false
			}
			if !released[r.Node] {
				released[r.Node] = true
				c.resolver.forget(r.Node)
				obs.problems = append(obs.problems, Problem{
					Object: "Node/" + r.Node, Node: r.Node, Reason: ReasonInstanceReleased,
					Message: fmt.Sprintf("ECS instance %s of node %s has been released; the node gets no route", r.NextHop, r.Node),
				})
			}
			return true
		})
	}

	for _, t := range tables {
		for _, r := range resolved {
			r.Table = t.ID
			obs.desired = append(obs.desired, r)
		}
	}
	obs.desired = append(obs.desired, kept...)
	obs.plan = Diff(obs.desired, current, c.cfg.Policy, c.facts(obs))
	obs.problems = append(obs.problems, obs.plan.Problems...)
	c.observeSourceDestChecks(ctx, obs)
	return obs, nil
}

// facts are what the plan needs to know about nodes and instances to tell
// the causes of deletions apart, and the valve's memory.
func (c *Controller) facts(obs *observation) Facts {
	f := Facts{Nodes: obs.existing, Now: c.clock.Now(), Window: c.valveWindow()}
	if obs.status != nil {
		f.Released = map[string]bool{}
		for _, r := range obs.current {
			if _, ok := obs.status[r.NextHop]; !ok && c.cfg.Policy.Owns(r) {
				f.Released[r.NextHop] = true
			}
		}
	}
	return f
}

func mapKeys[V any](m map[string]V) map[string]bool {
	s := make(map[string]bool, len(m))
	for k := range m {
		s[k] = true
	}
	return s
}
