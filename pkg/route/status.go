package route

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	ConditionMessageNoRouteCreated = "vpc-route-publisher has not published the node's routes"
	// ConditionAnnotation records, on the node, the NetworkUnavailable
	// condition the publisher wrote last, as status,reason,lastTransitionTime
	// (RFC 3339). The cloud-controller-manager writes the same reasons, so
	// the reason alone cannot tell our condition from another's: the
	// condition is ours only while it still matches this record. It is
	// written in the same status patch as the condition, with the field
	// manager FieldManager.
	ConditionAnnotation = "route.vpc-route-publisher.io/network-unavailable"
	// FieldManager is the field manager of the publisher's node patches.
	FieldManager = ControllerName
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
	nodeUnrouted  nodeVerdict = iota // no route at all (no CIDR, no instance, released, refused)
	nodeSettling                     // pending, unverified or about to be written
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

// updateConditions keeps NetworkUnavailable true to the routes of every
// node that is not excluded, so that no pod is scheduled onto a node whose
// route is not Available yet. Nobody else sets the condition once the
// cloud-controller-manager's route controller is off and calico-node runs
// with CALICO_NETWORKING_BACKEND=none.
//
//   - A node without the condition gets True/NoRouteCreated on first sight,
//     or False/RouteCreated at once when its routes are already Available
//     in every table.
//   - False/RouteCreated once the node's routes are Available in every
//     table, replacing only a True that is ours.
//   - True/NoRouteCreated when the node has no route (no pod CIDR or
//     instance yet, instance released, CIDR refused, route removed) or one
//     failed, conflicts or is withheld, replacing only a False that is ours.
//   - Nodes whose routes are settling are left as they are.
//
// Ours means the reason is one we write and the node's ConditionAnnotation
// records exactly this condition: a condition someone else set (Calico's
// CalicoIsDown, the cloud-controller-manager's RouteCreated) is never
// flipped. An excluded node's own condition of ours is withdrawn.
func (c *Controller) updateConditions(ctx context.Context, rep *Report) []error {
	if err := ctx.Err(); err != nil {
		return nil
	}
	var errs []error
	verdicts := nodeVerdicts(rep)
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return []error{fmt.Errorf("listing nodes for their conditions: %w", err)}
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmpString(a.Name, b.Name) })
	for _, n := range nodes {
		cond := networkUnavailable(n)
		mine := conditionIsOurs(n, cond)
		var want corev1.ConditionStatus
		switch verdict := verdicts[n.Name]; {
		case c.excluded(n):
			if mine {
				errs = append(errs, c.withdrawCondition(ctx, n.Name))
			}
			continue
		case cond == nil && verdict == nodePublished:
			want = corev1.ConditionFalse
		case cond == nil:
			want = corev1.ConditionTrue
		case verdict == nodePublished && cond.Status == corev1.ConditionTrue && mine:
			want = corev1.ConditionFalse
		case (verdict == nodeBroken || verdict == nodeUnrouted) && cond.Status == corev1.ConditionFalse && mine:
			want = corev1.ConditionTrue
		default:
			continue
		}
		if err := c.patchCondition(ctx, n.Name, want); err != nil {
			errs = append(errs, err)
			if errors.Is(err, ErrFenced) {
				break
			}
		}
	}
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

func networkUnavailable(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeNetworkUnavailable {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// conditionRecord renders a condition as ConditionAnnotation stores it.
func conditionRecord(status corev1.ConditionStatus, reason string, transition metav1.Time) string {
	return string(status) + "," + reason + "," + transition.UTC().Format(time.RFC3339)
}

// conditionIsOurs reports whether the node's NetworkUnavailable condition
// is the one the publisher wrote last: one of our reasons, and recorded in
// the node's ConditionAnnotation with the same status and transition time.
func conditionIsOurs(n *corev1.Node, cond *corev1.NodeCondition) bool {
	if cond == nil || cond.Reason != ConditionReasonRouteCreated && cond.Reason != ConditionReasonNoRouteCreated {
		return false
	}
	return n.Annotations[ConditionAnnotation] == conditionRecord(cond.Status, cond.Reason, cond.LastTransitionTime)
}

// patchCondition sets the node's NetworkUnavailable condition, and records
// it in ConditionAnnotation, with one strategic merge patch of the node's
// status (conditions merge by type), touching no other condition. The patch
// is only made on a status change, so both timestamps are now, as kubelet
// and the cloud-controller-manager do. It is fenced like a cloud write.
func (c *Controller) patchCondition(ctx context.Context, node string, status corev1.ConditionStatus) error {
	now := metav1.NewTime(c.clock.Now().Truncate(time.Second))
	cond := corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: status,
		Reason: ConditionReasonRouteCreated, Message: ConditionMessageRouteCreated,
		LastTransitionTime: now, LastHeartbeatTime: now,
	}
	if status == corev1.ConditionTrue {
		cond.Reason, cond.Message = ConditionReasonNoRouteCreated, ConditionMessageNoRouteCreated
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{ConditionAnnotation: conditionRecord(status, cond.Reason, now)}},
		"status":   map[string]any{"conditions": []corev1.NodeCondition{cond}},
	})
	if err != nil {
		return fmt.Errorf("encoding the condition patch of node %s: %w", node, err)
	}
	if err := c.patchNodeStatus(ctx, node, patch); err != nil {
		return fmt.Errorf("setting NetworkUnavailable=%s on node %s: %w", status, node, err)
	}
	klog.FromContext(ctx).V(2).Info("Set node condition", "node", node, "networkUnavailable", status)
	return nil
}

// withdrawCondition removes our NetworkUnavailable condition, and its
// record, from a node that became excluded: the publisher no longer speaks
// for its network.
func (c *Controller) withdrawCondition(ctx context.Context, node string) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{ConditionAnnotation: nil}},
		"status":   map[string]any{"conditions": []map[string]any{{"type": corev1.NodeNetworkUnavailable, "$patch": "delete"}}},
	})
	if err != nil {
		return fmt.Errorf("encoding the condition patch of node %s: %w", node, err)
	}
	if err := c.patchNodeStatus(ctx, node, patch); err != nil {
		return fmt.Errorf("withdrawing NetworkUnavailable from excluded node %s: %w", node, err)
	}
	klog.FromContext(ctx).V(2).Info("Withdrew node condition of an excluded node", "node", node)
	return nil
}

// patchNodeStatus patches the node's status, bounded by the leader fence.
func (c *Controller) patchNodeStatus(ctx context.Context, node string, patch []byte) error {
	ctx, cancel, err := WriteContext(ctx)
	defer cancel()
	if err != nil {
		return err
	}
	_, err = c.kube.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}, "status")
	return err
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
		msg := fmt.Sprintf("withholding %d route deletion(s) of %d owned entries (causes: %s; max delete ratio %v, %d more deletions of routes of existing nodes allowed in the %s window from a base of %d) for nodes %s; fix the route source or raise --max-delete-ratio",
			len(rep.Withheld), rep.Owned, strings.Join(rep.Valve.Tripped, ", "), c.cfg.Policy.MaxDeleteRatio,
			max(0, rep.Valve.Remaining), rep.Valve.Window, rep.Valve.Base, strings.Join(nodes, ", "))
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
