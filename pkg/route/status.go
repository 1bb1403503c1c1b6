package route

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Node condition values written by the publisher.
const (
	// ConditionReasonRouteCreated marks NetworkUnavailable=False set by us
	// (the same reason the cloud-controller-manager uses).
	ConditionReasonRouteCreated = "RouteCreated"
	// ConditionReasonNoRouteCreated marks NetworkUnavailable=True set by us.
	ConditionReasonNoRouteCreated = "NoRouteCreated"
	// ConditionMessageRouteCreated is the message of the False condition.
	ConditionMessageRouteCreated = "vpc-route-publisher published the node's routes"
	// ConditionMessageNoRouteCreated is the message of the True condition.
	ConditionMessageNoRouteCreated = "vpc-route-publisher could not publish the node's routes"
)

// Event reasons.
const (
	EventRoutePublished     = "RoutePublished"
	EventRouteConflict      = "RouteConflict"
	EventRouteFailed        = "RouteFailed"
	EventRouteProblem       = "RouteProblem"
	EventSafetyValveTripped = "SafetyValveTripped"
)

// nodeVerdict summarises a node's routes across every table.
type nodeVerdict int

const (
	nodeSettling  nodeVerdict = iota // pending or about to be written
	nodePublished                    // in sync everywhere
	nodeBroken                       // failed, conflicting or withheld somewhere
)

func nodeVerdicts(rep *Report) map[string]nodeVerdict {
	v := map[string]nodeVerdict{}
	all := map[string]bool{}
	for _, rr := range rep.Routes {
		if _, ok := all[rr.Node]; !ok {
			all[rr.Node] = true
		}
		all[rr.Node] = all[rr.Node] && rr.State == StateInSync
		switch rr.State {
		case StateFailed, StateConflict, StateWithheld, StateSourceDestCheck:
			v[rr.Node] = nodeBroken
		}
	}
	for n, ok := range all {
		if _, broken := v[n]; !broken {
			if ok {
				v[n] = nodePublished
			} else {
				v[n] = nodeSettling
			}
		}
	}
	return v
}

// updateConditions sets NetworkUnavailable on the nodes with routes:
//
//   - False/RouteCreated once the node's routes are Available in every
//     table, unless the condition is already False (whoever set it).
//   - True/NoRouteCreated when a route of the node failed, conflicts or is
//     withheld, but only if the condition is absent or was set by us: a
//     False condition set by the CNI or another controller is never flipped
//     to True.
//
// Nodes whose routes are still settling are left alone.
func (c *Controller) updateConditions(ctx context.Context, obs *observation, rep *Report) []error {
	var errs []error
	verdicts := nodeVerdicts(rep)
	for _, name := range sortedKeys(verdicts) {
		verdict := verdicts[name]
		n, ok := obs.nodes[name]
		if !ok {
			continue
		}
		cond := networkUnavailable(n)
		var want corev1.ConditionStatus
		switch verdict {
		case nodePublished:
			if cond != nil && cond.Status == corev1.ConditionFalse {
				continue
			}
			want = corev1.ConditionFalse
		case nodeBroken:
			ours := cond == nil || cond.Reason == ConditionReasonRouteCreated || cond.Reason == ConditionReasonNoRouteCreated
			if !ours || cond != nil && cond.Status == corev1.ConditionTrue {
				continue
			}
			want = corev1.ConditionTrue
		default:
			continue
		}
		if err := c.patchCondition(ctx, name, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func networkUnavailable(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeNetworkUnavailable {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// patchCondition sets the node's NetworkUnavailable condition with a
// strategic merge patch of status.conditions (merge key: type), touching no
// other condition. The patch is only made on a status change, so both
// timestamps are now, as kubelet and the cloud-controller-manager do.
func (c *Controller) patchCondition(ctx context.Context, node string, status corev1.ConditionStatus) error {
	now := metav1.NewTime(c.clock.Now())
	cond := corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: status,
		Reason: ConditionReasonRouteCreated, Message: ConditionMessageRouteCreated,
		LastTransitionTime: now, LastHeartbeatTime: now,
	}
	if status == corev1.ConditionTrue {
		cond.Reason, cond.Message = ConditionReasonNoRouteCreated, ConditionMessageNoRouteCreated
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{cond}}})
	if err != nil {
		return fmt.Errorf("encoding the condition patch of node %s: %w", node, err)
	}
	if _, err := c.kube.CoreV1().Nodes().PatchStatus(ctx, node, patch); err != nil {
		return fmt.Errorf("setting NetworkUnavailable=%s on node %s: %w", status, node, err)
	}
	klog.FromContext(ctx).V(2).Info("Set node condition", "node", node, "networkUnavailable", status)
	return nil
}

// emitEvents records events on the nodes (and pools) concerned. Warnings
// are emitted when they first appear, not on every pass; RoutePublished
// when a node's routes become Available everywhere.
func (c *Controller) emitEvents(ctx context.Context, obs *observation, rep *Report, out *outcome) {
	if c.recorder == nil {
		return
	}
	warned := map[string]bool{}
	warn := func(object, reason, msg string) {
		key := object + "|" + reason + "|" + msg
		warned[key] = true
		if c.state.warned[key] {
			return
		}
		if ref := c.objectRef(object); ref != nil {
			c.recorder.Event(ref, corev1.EventTypeWarning, reason, msg)
		}
	}
	for _, cf := range rep.Conflicts {
		warn("Node/"+cf.Desired.Node, EventRouteConflict, cf.Message())
	}
	for _, p := range rep.Problems {
		reason := EventRouteProblem
		if p.Reason == ReasonQuotaExceeded || p.Reason == ReasonWriteFailed {
			reason = EventRouteFailed
		}
		warn(p.Object, reason, p.Message)
	}
	if rep.SafetyValveTripped {
		var nodes []string
		for _, r := range rep.Withheld {
			nodes = append(nodes, r.Node)
		}
		slices.Sort(nodes)
		nodes = slices.Compact(nodes)
		msg := fmt.Sprintf("withholding %d route deletion(s) of %d owned entries (more than the allowed ratio %v) for nodes %s; fix the route source or raise --max-delete-ratio",
			len(rep.Withheld), rep.Owned, c.cfg.Policy.MaxDeleteRatio, strings.Join(nodes, ", "))
		for _, n := range nodes {
			// One event per withheld node, on the node even if it is
			// gone: that is where an operator looks.
			warn("Node/"+n, EventSafetyValveTripped, msg)
		}
	}
	c.state.warned = warned

	for name, v := range nodeVerdicts(rep) {
		if v != nodePublished {
			c.state.unpublished[name] = true
			continue
		}
		if c.state.unpublished[name] || wroteFor(out, name) {
			delete(c.state.unpublished, name)
			if ref := c.objectRef("Node/" + name); ref != nil {
				c.recorder.Eventf(ref, corev1.EventTypeNormal, EventRoutePublished, "routes of node %s are Available in every route table (%d entries)", name, countRoutes(rep, name))
			}
		}
	}
	for name := range c.state.unpublished {
		if _, ok := obs.nodes[name]; !ok {
			delete(c.state.unpublished, name)
		}
	}
	klog.FromContext(ctx).V(4).Info("Events emitted", "warnings", len(warned))
}

func wroteFor(out *outcome, node string) bool {
	if out == nil {
		return false
	}
	for _, r := range out.created {
		if r.Node == node {
			return true
		}
	}
	for _, r := range out.adopted {
		if r.Node == node {
			return true
		}
	}
	return false
}

func countRoutes(rep *Report, node string) int {
	n := 0
	for _, rr := range rep.Routes {
		if rr.Node == node {
			n++
		}
	}
	return n
}

// objectRef builds the event target of a Kind/name object, using the
// cached Node when there is one.
func (c *Controller) objectRef(object string) runtime.Object {
	kind, name, ok := strings.Cut(object, "/")
	if !ok || name == "" {
		return nil
	}
	switch kind {
	case "Node":
		if n, err := c.nodes.Get(name); err == nil {
			return n
		}
		// Nodes are referenced by name as UID, as kubelet does.
		return &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: name, UID: types.UID(name)}
	case "SpiderIPPool":
		return &corev1.ObjectReference{Kind: kind, APIVersion: "spiderpool.spidernet.io/v2beta1", Name: name}
	default:
		return nil
	}
}
