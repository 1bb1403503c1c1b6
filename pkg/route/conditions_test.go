package route

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func withCondition(n *corev1.Node, status corev1.ConditionStatus, reason string) *corev1.Node {
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: status, Reason: reason,
		LastTransitionTime: metav1.Now(),
	})
	return n
}

// TestConditionOnFirstSight: a node without the condition is held
// NetworkUnavailable=True until its route is Available, including a node
// that has no pod CIDR (nothing to route yet); ours carries our record.
func TestConditionOnFirstSight(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b")})
	h.cloud.do(func(c *fakeCloud) { c.pendingTables["vtb-1"] = true })
	h.start()
	h.eventually("True on both nodes while nothing is Available", func() bool {
		a, b := h.condition("cn-chengdu.i-a"), h.condition("cn-chengdu.i-b")
		return a != nil && a.Status == corev1.ConditionTrue && b != nil && b.Status == corev1.ConditionTrue
	})
	n := h.node("cn-chengdu.i-a")
	if !conditionIsOurs(n, networkUnavailable(n)) {
		t.Errorf("our condition is not recognised as ours: %v %+v", n.Annotations, networkUnavailable(n))
	}
	h.cloud.settle()
	h.eventually("False once Available", func() bool {
		c := h.condition("cn-chengdu.i-a")
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ConditionReasonRouteCreated
	})
	if c := h.condition("cn-chengdu.i-b"); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("node without a pod CIDR: condition %+v, want True", c)
	}
}

// TestConditionOfOthersIsNeverFlipped: a True set by Calico, or by the
// cloud-controller-manager with the very reasons we use, stays True when
// the route is published; a False set by others stays False when the
// route fails.
func TestConditionOfOthersIsNeverFlipped(t *testing.T) {
	calico := withCondition(testNode("i-a", "10.0.1.0/24"), corev1.ConditionTrue, "CalicoIsDown")
	ccm := withCondition(testNode("i-b", "10.0.2.0/24"), corev1.ConditionTrue, ConditionReasonNoRouteCreated)
	cni := withCondition(testNode("i-c", "10.0.3.0/24"), corev1.ConditionFalse, ConditionReasonRouteCreated)
	h := newHarness(t, []*corev1.Node{calico, ccm, cni})
	h.cloud.do(func(c *fakeCloud) {
		c.createErr[netip.MustParsePrefix("10.0.3.0/24")] = &apiError{ErrInvalid, "InvalidNextHop.Status"}
	})
	h.start()
	h.eventually("routes of a and b published", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b"))
	})
	h.eventually("c's failure reported", func() bool { return h.hasEvent("cn-chengdu.i-c", EventRouteFailed, "") })
	h.settledPass()
	for node, want := range map[string]corev1.ConditionStatus{"cn-chengdu.i-a": corev1.ConditionTrue, "cn-chengdu.i-b": corev1.ConditionTrue, "cn-chengdu.i-c": corev1.ConditionFalse} {
		if c := h.condition(node); c == nil || c.Status != want {
			t.Errorf("%s: condition set by someone else changed to %+v, want %s", node, c, want)
		}
	}
	if n := h.patches(); n != 0 {
		t.Errorf("%d node patches, want none", n)
	}
}

// TestConditionReturnsToTrueWhenTheRouteGoes: our False goes back to True
// when the node's route is removed while the node exists (its instance
// released, its CIDR gone).
func TestConditionReturnsToTrueWhenTheRouteGoes(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24")})
	h.start()
	h.eventually("both published", func() bool {
		a, b := h.condition("cn-chengdu.i-a"), h.condition("cn-chengdu.i-b")
		return a != nil && a.Status == corev1.ConditionFalse && b != nil && b.Status == corev1.ConditionFalse
	})
	h.inst.do(func(f *fakeInstances) { f.released["i-a"] = true })
	h.updateNode("cn-chengdu.i-b", func(n *corev1.Node) { n.Spec.PodCIDRs, n.Spec.PodCIDR = nil, "" })
	h.eventually("True again on both", func() bool {
		a, b := h.condition("cn-chengdu.i-a"), h.condition("cn-chengdu.i-b")
		return a != nil && a.Status == corev1.ConditionTrue && a.Reason == ConditionReasonNoRouteCreated &&
			b != nil && b.Status == corev1.ConditionTrue && b.Reason == ConditionReasonNoRouteCreated
	})
}

// TestNeverInheritAnotherNodesRoute: node B's pod CIDR is reused by new node
// A before B's entry is collected, and A's instance lookup fails. A does not
// keep B's entry (it is collected as B's), is not published and stays
// NetworkUnavailable; an entry whose marker names A itself is kept, but
// only as unverified.
func TestNeverInheritAnotherNodesRoute(t *testing.T) {
	a := testNode("i-a", "10.0.1.0/24", "10.0.9.0/24")
	h := newHarness(t, []*corev1.Node{a})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.1.0/24"), NextHop: "i-b", Owner: testCluster, Node: "cn-chengdu.i-b"})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.9.0/24"), NextHop: "i-a", Owner: testCluster, Node: "cn-chengdu.i-a"})
	h.inst.do(func(f *fakeInstances) { f.fail["cn-chengdu.i-a"] = errors.New("ECS unreachable") })
	h.startInformers()
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]RouteState{}
	for _, rr := range rep.Routes {
		states[rr.Destination] = rr.State
	}
	if len(states) != 1 || states["10.0.9.0/24"] != StateUnverified {
		t.Errorf("route states %v, want only A's own entry, unverified", states)
	}
	if len(rep.Unexpected) != 1 || rep.Unexpected[0].NextHop != "i-b" {
		t.Errorf("unexpected %v, want B's entry", rep.Unexpected)
	}

	h.start()
	h.eventually("B's entry collected, A's own kept", func() bool {
		return h.has("vtb-1 10.0.9.0/24 -> i-a (c1/cn-chengdu.i-a)")
	})
	h.settledPass()
	if c := h.condition("cn-chengdu.i-a"); c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("node A with an unverified route: condition %+v, want True", c)
	}
}

// TestMetricsForgottenWhenLeadershipEnds: once Run returns (the lease is
// lost), the replica exports no drift, problem or valve values of its own.
func TestMetricsForgottenWhenLeadershipEnds(t *testing.T) {
	n := testNode("i-a", "10.0.1.0/24")
	n.Spec.ProviderID = "" // a problem: no instance
	h := newHarness(t, []*corev1.Node{n, testNode("i-b", "10.0.2.0/24")})
	h.cloud.do(func(c *fakeCloud) {
		c.createErr[netip.MustParsePrefix("10.0.2.0/24")] = &apiError{ErrQuotaExceeded, "QuotaExceeded.Route"}
	})
	h.start()
	h.eventually("drift and problems exported", func() bool {
		return h.entries("vtb-1", EntriesMissing) == 1 && testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonNoInstance)) == 1
	})
	h.stop()
	for _, name := range []string{"vpc_route_publisher_route_entries", "vpc_route_publisher_problems", "vpc_route_publisher_route_table_quota_used"} {
		if n, err := testutil.GatherAndCount(h.reg, name); err != nil || n != 0 {
			t.Errorf("%s: %d series after leadership ended (%v), want none", name, n, err)
		}
	}
	if v := testutil.ToFloat64(h.metrics.Leader); v != 0 {
		t.Errorf("leader = %v after leadership ended", v)
	}
}
