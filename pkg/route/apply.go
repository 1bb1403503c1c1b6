package route

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
)

// Write operations, the operation label of route_writes_total.
const (
	OpCreate = "create"
	OpDelete = "delete"
	OpAdopt  = "adopt"
)

// outcome is what the writes of a pass achieved, by slot.
type outcome struct {
	deleted   map[Key]bool
	created   map[Key]Route // as returned, with Status
	adopted   map[Key]Route
	failed    map[Key]writeFailure
	attempted bool
}

type writeFailure struct {
	op    string
	route Route
	err   error
}

func newOutcome() *outcome {
	return &outcome{deleted: map[Key]bool{}, created: map[Key]Route{}, adopted: map[Key]Route{}, failed: map[Key]writeFailure{}}
}

// apply makes the plan's writes: deletes first (a replacement must free its
// slot, and a full table needs the room), then creates, then adoptions.
// Each entry succeeds or fails on its own; a create whose slot could not be
// freed is not attempted. It returns one error per failed entry.
func (c *Controller) apply(ctx context.Context, plan Plan, out *outcome) []error {
	logger := klog.FromContext(ctx)
	out.attempted = true
	var errs []error
	fail := func(op string, r Route, err error) {
		out.failed[r.Key()] = writeFailure{op: op, route: r, err: err}
		errs = append(errs, fmt.Errorf("%s route %s for node %s: %w", opVerb(op), r, dash(r.Node), err))
	}

	if len(plan.Delete) > 0 {
		logger.Info("Deleting routes", "count", len(plan.Delete))
		for _, res := range c.write(ctx, OpDelete, plan.Delete) {
			switch {
			case res.Err == nil:
				out.deleted[res.Route.Key()] = true
			case ErrorClass(res.Err) == "not_found":
				// Already gone: the goal of a delete.
				out.deleted[res.Route.Key()] = true
			default:
				fail(OpDelete, res.Route, res.Err)
			}
		}
	}
	if ctx.Err() != nil {
		return append(errs, context.Cause(ctx))
	}

	replaced := map[Key]bool{}
	for _, r := range plan.Delete {
		replaced[r.Key()] = true
	}
	var creates []Route
	for _, r := range plan.Create {
		if replaced[r.Key()] && !out.deleted[r.Key()] {
			continue // the old entry still holds the slot; its failure is recorded
		}
		creates = append(creates, r)
	}
	if len(creates) > 0 {
		logger.Info("Creating routes", "count", len(creates))
		for _, res := range c.write(ctx, OpCreate, creates) {
			if res.Err != nil {
				fail(OpCreate, res.Route, res.Err)
				continue
			}
			out.created[res.Route.Key()] = res.Route
		}
	}
	if ctx.Err() != nil {
		return append(errs, context.Cause(ctx))
	}

	if len(plan.Adopt) > 0 {
		logger.Info("Adopting unmarked routes", "count", len(plan.Adopt))
		for _, res := range c.write(ctx, OpAdopt, plan.Adopt) {
			if res.Err != nil {
				fail(OpAdopt, res.Route, res.Err)
				continue
			}
			out.adopted[res.Route.Key()] = res.Route
		}
	}
	return errs
}

// write calls the table and counts the results, matched to the routes by
// slot. Routes the table did not report on (an interrupted batch) count as
// failed, with the context's error when it was cancelled.
func (c *Controller) write(ctx context.Context, op string, rs []Route) []Result {
	var results []Result
	switch op {
	case OpCreate:
		results = c.table.Create(ctx, rs)
	case OpDelete:
		results = c.table.Delete(ctx, rs)
	case OpAdopt:
		results = c.table.Adopt(ctx, rs)
	}
	asked := map[Key]bool{}
	for _, r := range rs {
		asked[r.Key()] = true
	}
	seen := map[Key]bool{}
	kept := results[:0]
	for _, res := range results {
		if !asked[res.Route.Key()] || seen[res.Route.Key()] {
			// A result for a route we did not write (or twice): it
			// cannot be attributed, so it is not trusted.
			continue
		}
		kept = append(kept, res)
		seen[res.Route.Key()] = true
		result := "success"
		if res.Err != nil {
			result = ErrorClass(res.Err)
		}
		c.metrics.RouteWrites.WithLabelValues(op, result).Inc()
	}
	results = kept
	for _, r := range rs {
		if !seen[r.Key()] {
			err := context.Cause(ctx)
			if err == nil {
				err = fmt.Errorf("the cloud reported no result for route %s", r)
			}
			results = append(results, Result{Route: r, Err: err})
		}
	}
	return results
}

func opVerb(op string) string {
	switch op {
	case OpCreate:
		return "creating"
	case OpDelete:
		return "deleting"
	default:
		return "adopting"
	}
}
