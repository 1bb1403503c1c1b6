package route

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func TestControllerNodeLifecycle(t *testing.T) {
	h := newHarness(t, []*corev1.Node{
		testNode("i-a", "10.0.1.0/24", "fd00:10:0:1::/64"),
		testNode("i-b", "10.0.2.0/24"),
	}, withTables("vtb-1", "vtb-2"))
	start := time.Now()
	h.start()

	h.eventually("dual-stack routes in both tables", func() bool {
		return h.has(
			entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "fd00:10:0:1::/64", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b"),
			entry("vtb-2", "10.0.1.0/24", "i-a"), entry("vtb-2", "fd00:10:0:1::/64", "i-a"), entry("vtb-2", "10.0.2.0/24", "i-b"),
		)
	})
	h.eventually("conditions", func() bool {
		c := h.condition("cn-chengdu.i-a")
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ConditionReasonRouteCreated &&
			c.Message == ConditionMessageRouteCreated && !c.LastTransitionTime.IsZero()
	})
	h.eventually("RoutePublished event", func() bool { return h.hasEvent("cn-chengdu.i-b", EventRoutePublished, "Available") })
	h.eventually("drift metrics", func() bool {
		return h.entries("vtb-2", EntriesDesired) == 3 && h.entries("vtb-2", EntriesPresent) == 3 && h.entries("vtb-2", EntriesMissing) == 0
	})
	if got := testutil.ToFloat64(h.metrics.QuotaUsed.WithLabelValues("vtb-1")); got != 3 {
		t.Errorf("quota used = %v, want 3", got)
	}
	if got := observations(t, h.reg, "vpc_route_publisher_route_convergence_seconds"); got != 3 {
		t.Errorf("convergence observations = %d, want one per node destination (3)", got)
	}

	if last := h.ctrl.LastSuccessfulSync(); last.IsZero() || testutil.ToFloat64(h.metrics.LastSuccessfulSync) < float64(start.Unix()) {
		t.Errorf("last successful sync %v, metric %v", last, testutil.ToFloat64(h.metrics.LastSuccessfulSync))
	}

	// Steady state: a pass writes nothing.
	writes := h.cloud.writes
	h.settledPass()
	h.cloud.do(func(c *fakeCloud) {
		if c.writes != writes {
			t.Errorf("steady-state pass wrote %d entries", c.writes-writes)
		}
	})

	// Pod CIDR change: the old route goes, the new one comes.
	h.updateNode("cn-chengdu.i-b", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.9.0/24"}; n.Spec.PodCIDR = "10.0.9.0/24" })
	h.eventually("moved route", func() bool {
		return h.has(
			entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "fd00:10:0:1::/64", "i-a"), entry("vtb-1", "10.0.9.0/24", "i-b"),
			entry("vtb-2", "10.0.1.0/24", "i-a"), entry("vtb-2", "fd00:10:0:1::/64", "i-a"), entry("vtb-2", "10.0.9.0/24", "i-b"),
		)
	})

	// Node deleted: its routes go.
	if err := h.kube.CoreV1().Nodes().Delete(h.ctx, "cn-chengdu.i-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("routes of the deleted node removed", func() bool {
		return h.has(
			entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "fd00:10:0:1::/64", "i-a"),
			entry("vtb-2", "10.0.1.0/24", "i-a"), entry("vtb-2", "fd00:10:0:1::/64", "i-a"),
		)
	})
	if got := testutil.ToFloat64(h.metrics.RouteWrites.WithLabelValues(OpDelete, "success")); got != 4 {
		t.Errorf("successful deletes = %v, want 4", got)
	}
	// Workqueue metrics land in the same registry.
	if n, err := testutil.GatherAndCount(h.reg, "workqueue_adds_total"); err != nil || n != 1 {
		t.Errorf("workqueue_adds_total series = %d, %v", n, err)
	}
}

func TestControllerGarbageCollectsAfterDowntime(t *testing.T) {
	// Routes of nodes deleted while no controller ran, and routes left by
	// a CIDR change, are found in the cloud and removed.
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24"), testNode("i-c", "10.0.3.0/24")})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.1.0/24"), NextHop: "i-a", Owner: testCluster, Node: "cn-chengdu.i-a"})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.7.0/24"), NextHop: "i-z", Owner: testCluster, Node: "cn-chengdu.i-z"})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.8.0/24"), NextHop: "i-b", Owner: testCluster, Node: "cn-chengdu.i-b"})
	h.start()
	h.eventually("stale routes removed", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b"), entry("vtb-1", "10.0.3.0/24", "i-c"))
	})
}

func TestControllerLateProviderID(t *testing.T) {
	n := testNode("i-a", "10.0.1.0/24")
	n.Spec.ProviderID = ""
	h := newHarness(t, []*corev1.Node{n})
	h.start()
	h.eventually("NoInstance problem", func() bool {
		return testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonNoInstance)) == 1
	})
	if !h.has() {
		t.Fatalf("a route was guessed for a node without instance: %v", h.cloud.snapshot())
	}
	h.eventually("RouteProblem event", func() bool { return h.hasEvent("cn-chengdu.i-a", EventRouteProblem, "no known ECS instance") })

	h.updateNode("cn-chengdu.i-a", func(n *corev1.Node) { n.Spec.ProviderID = "cn-chengdu.i-a" })
	h.eventually("route once the providerID is set", func() bool { return h.has(entry("vtb-1", "10.0.1.0/24", "i-a")) })
	h.eventually("problem cleared", func() bool {
		n, _ := testutil.GatherAndCount(h.reg, "vpc_route_publisher_problems")
		return n == 0
	})
}

func TestControllerInstanceLookupFailureKeepsRoute(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24")})
	h.start()
	h.eventually("routes", func() bool { return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b")) })

	// The node's address changes (cache miss) while ECS fails: the
	// existing route stays, the pass fails and is retried.
	h.inst.do(func(f *fakeInstances) { f.fail["cn-chengdu.i-a"] = errors.New("ECS unreachable") })
	partialBefore := testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultPartial))
	h.updateNode("cn-chengdu.i-a", func(n *corev1.Node) { n.Status.Addresses[0].Address = "192.168.0.99" })
	h.eventually("retried failing passes", func() bool {
		return testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultPartial)) >= partialBefore+2
	})
	if !h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b")) {
		t.Fatalf("route of an unresolvable node was touched: %v", h.cloud.snapshot())
	}
	h.inst.do(func(f *fakeInstances) { delete(f.fail, "cn-chengdu.i-a") })
	h.eventually("recovery", func() bool {
		return testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonInstanceLookupFailed)) == 0 &&
			testutil.ToFloat64(h.metrics.LastSuccessfulSync) > 0
	})
}

func TestControllerForeignConflict(t *testing.T) {
	calico := testNode("i-b", "10.0.2.0/24")
	calico.Status.Conditions = append(calico.Status.Conditions, corev1.NodeCondition{
		Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "CalicoIsUp",
	})
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), calico})
	user := Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.1.0/24"), NextHop: "i-user"}
	h.cloud.put(user)
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.2.0/24"), NextHop: "i-x", Owner: "other-cluster", Node: "x"})
	h.start()

	h.eventually("conflict reported", func() bool {
		return h.entries("vtb-1", EntriesConflicting) == 2 &&
			h.hasEvent("cn-chengdu.i-a", EventRouteConflict, "carries no ownership marker") &&
			h.hasEvent("cn-chengdu.i-b", EventRouteConflict, `owned by cluster "other-cluster"`)
	})
	if !h.has("vtb-1 10.0.1.0/24 -> i-user (/)", "vtb-1 10.0.2.0/24 -> i-x (other-cluster/x)") {
		t.Fatalf("foreign entries were touched: %v", h.cloud.snapshot())
	}
	// Absent condition: ours to set True. CNI's False: never flipped.
	h.eventually("NetworkUnavailable=True on the conflicting node", func() bool {
		c := h.condition("cn-chengdu.i-a")
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == ConditionReasonNoRouteCreated
	})
	if c := h.condition("cn-chengdu.i-b"); c.Status != corev1.ConditionFalse || c.Reason != "CalicoIsUp" {
		t.Errorf("CNI condition changed: %+v", c)
	}

	// The user removes their entry: our route goes in, condition False.
	h.cloud.do(func(c *fakeCloud) { delete(c.entries, user.Key()) })
	h.ctrl.Enqueue()
	h.eventually("route after the conflict is gone", func() bool {
		c := h.condition("cn-chengdu.i-a")
		s := h.cloud.snapshot()
		return len(s) == 2 && s[0] == entry("vtb-1", "10.0.1.0/24", "i-a") && c.Status == corev1.ConditionFalse && c.Reason == ConditionReasonRouteCreated
	})
}

func TestControllerAdoption(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24")},
		withConfig(func(c *Config) { c.Policy.AdoptUnmarked = true }))
	// CCM-made entries: one matching, one to another instance.
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.1.0/24"), NextHop: "i-a"})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.2.0/24"), NextHop: "i-old"})
	h.start()
	h.eventually("adopted", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), "vtb-1 10.0.2.0/24 -> i-old (/)")
	})
	h.cloud.do(func(c *fakeCloud) {
		if c.createCalls != 0 {
			t.Errorf("adoption created entries (%d calls)", c.createCalls)
		}
	})
	h.eventually("adopt metric and conflict", func() bool {
		return testutil.ToFloat64(h.metrics.RouteWrites.WithLabelValues(OpAdopt, "success")) == 1 &&
			h.entries("vtb-1", EntriesConflicting) == 1
	})
}

func TestControllerSafetyValve(t *testing.T) {
	h := newHarness(t, nil)
	for i, inst := range []string{"i-a", "i-b", "i-c"} {
		h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix(fmt.Sprintf("10.0.%d.0/24", i+1)), NextHop: inst, Owner: testCluster, Node: "cn-chengdu." + inst})
	}
	before := h.cloud.snapshot()
	h.start() // an empty node list, as after a bad restore

	h.eventually("valve tripped", func() bool {
		return testutil.ToFloat64(h.metrics.SafetyValveTripped.WithLabelValues(CauseNodeDeleted)) == 1 && h.hasEvent("cn-chengdu.i-a", EventSafetyValveTripped, "withholding 3 route deletion(s) of 3")
	})
	h.settledPass()
	if got := h.cloud.snapshot(); !equalStrings(got, before) {
		t.Fatalf("valve tripped but entries changed: %v", got)
	}
	if got := testutil.ToFloat64(h.metrics.SafetyValveTrips.WithLabelValues(CauseNodeDeleted)); got != 1 {
		t.Errorf("trips_total = %v, want 1 (counted once while tripped)", got)
	}
	if got := h.entries("vtb-1", EntriesUnexpected); got != 3 {
		t.Errorf("unexpected = %v, want 3", got)
	}

	// Creates still proceed while deletions are withheld.
	if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, testNode("i-d", "10.0.4.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("create despite the valve", func() bool { return len(h.cloud.snapshot()) == 4 })

	// Nodes come back: the ratio drops, the valve closes.
	for _, inst := range []string{"i-a", "i-b"} {
		n := testNode(inst, "10.0.1.0/24")
		if inst == "i-b" {
			n = testNode(inst, "10.0.2.0/24")
		}
		if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.eventually("valve closed, stale route deleted", func() bool {
		return testutil.ToFloat64(h.metrics.SafetyValveTripped.WithLabelValues(CauseNodeDeleted)) == 0 &&
			h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b"), entry("vtb-1", "10.0.4.0/24", "i-d"))
	})
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestControllerSpiderpoolSource(t *testing.T) {
	src := &staticSource{}
	h := newHarness(t, []*corev1.Node{testNode("i-a"), testNode("i-b")}, withSource(src))
	h.start()
	h.settledPass()
	if !h.has() {
		t.Fatalf("routes without pools: %v", h.cloud.snapshot())
	}
	// Pools appear (one per node, any size, IPv6 too); the pool informer
	// calls Enqueue.
	src.set([]Route{
		{Node: "cn-chengdu.i-a", Destination: netip.MustParsePrefix("10.0.1.0/26")},
		{Node: "cn-chengdu.i-a", Destination: netip.MustParsePrefix("10.0.1.64/26")},
		{Node: "cn-chengdu.i-b", Destination: netip.MustParsePrefix("fd00:10:0:2::/80")},
		{Node: "cn-chengdu.i-gone", Destination: netip.MustParsePrefix("10.0.3.0/26")},
	}, []Problem{{Object: "SpiderIPPool/pool-c", Reason: "PoolNotPinned", Message: "pool-c is not pinned to one node"}})
	h.ctrl.Enqueue()
	h.eventually("pool routes", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/26", "i-a"), entry("vtb-1", "10.0.1.64/26", "i-a"), entry("vtb-1", "fd00:10:0:2::/80", "i-b"))
	})
	h.eventually("problems by reason", func() bool {
		return testutil.ToFloat64(h.metrics.Problems.WithLabelValues("PoolNotPinned")) == 1 &&
			testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonNodeNotFound)) == 1
	})
}

func TestControllerDryRun(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withConfig(func(c *Config) { c.DryRun = true }))
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.7.0/24"), NextHop: "i-z", Owner: testCluster, Node: "z"})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.2.0/24"), NextHop: "i-y"})
	before := h.cloud.snapshot()
	h.start()
	h.eventually("dry-run drift metrics", func() bool {
		return testutil.ToFloat64(h.metrics.DryRun) == 1 && h.entries("vtb-1", EntriesMissing) == 1 && h.entries("vtb-1", EntriesUnexpected) == 1
	})
	h.settledPass()
	h.cloud.do(func(c *fakeCloud) {
		if c.createCalls+c.deleteCalls+c.adoptCalls != 0 {
			t.Errorf("dry run wrote: %d creates, %d deletes, %d adopts", c.createCalls, c.deleteCalls, c.adoptCalls)
		}
	})
	if got := h.cloud.snapshot(); !equalStrings(got, before) {
		t.Errorf("dry run changed the cloud: %v", got)
	}
	if n := h.patches(); n != 0 {
		t.Errorf("dry run patched nodes %d times", n)
	}
}

func TestControllerLeaderLossMidBatch(t *testing.T) {
	var nodes []*corev1.Node
	var want []string
	for i := range 10 {
		inst := fmt.Sprintf("i-%02d", i)
		dst := fmt.Sprintf("10.0.%d.0/24", i)
		nodes = append(nodes, testNode(inst, dst))
		want = append(want, entry("vtb-1", dst, inst))
	}
	h := newHarness(t, nodes)
	h.cloud.do(func(c *fakeCloud) {
		c.gate, c.gateAfter, c.stalled = make(chan struct{}), 4, make(chan struct{})
	})
	stalled := h.cloud.stalled
	h.start()
	select {
	case <-stalled:
	case <-time.After(15 * time.Second):
		t.Fatal("create never stalled")
	}
	// Leadership lost while the batch is half written.
	h.stop()
	if got := testutil.ToFloat64(h.metrics.Leader); got != 0 {
		t.Errorf("leader gauge = %v after Run returned", got)
	}
	if got := len(h.cloud.snapshot()); got != 4 {
		t.Fatalf("%d entries written before the stall, want 4", got)
	}
	if n := h.patches(); n != 0 {
		t.Errorf("nodes patched after leadership loss: %d", n)
	}

	// A new leader: fresh controller, fresh metrics, the cloud as memory.
	h.cloud.do(func(c *fakeCloud) { c.gate = nil })
	h.reg = prometheus.NewRegistry()
	h.metrics, _ = NewMetrics(h.reg)
	h.ctrl = h.newController()
	h.start()
	h.eventually("convergence by the new leader", func() bool { return h.has(want...) })
	h.eventually("every node condition set", func() bool {
		for _, n := range nodes {
			if c := h.condition(n.Name); c == nil || c.Status != corev1.ConditionFalse {
				return false
			}
		}
		return true
	})
	h.cloud.do(func(c *fakeCloud) {
		for k, n := range c.createdKeys {
			if n != 1 {
				t.Errorf("%v created %d times", k, n)
			}
		}
	})
	if got := testutil.ToFloat64(h.metrics.RouteWrites.WithLabelValues(OpCreate, "conflict")); got != 0 {
		t.Errorf("new leader hit %v duplicate-create conflicts", got)
	}
}

func TestControllerConditionWaitsForEveryTable(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withTables("vtb-1", "vtb-2"))
	h.cloud.do(func(c *fakeCloud) { c.pendingTables["vtb-2"] = true })
	h.start()
	h.eventually("entry Pending in vtb-2", func() bool {
		return h.entries("vtb-2", EntriesPending) == 1 && h.entries("vtb-1", EntriesPresent) == 1
	})
	h.settledPass()
	// First sight: the node is held unavailable until its route is.
	if c := h.condition("cn-chengdu.i-a"); c == nil || c.Status != corev1.ConditionTrue || c.Reason != ConditionReasonNoRouteCreated {
		t.Fatalf("condition while a table is Pending = %+v, want True/NoRouteCreated", c)
	}
	if h.hasEvent("cn-chengdu.i-a", EventRoutePublished, "") {
		t.Fatal("RoutePublished before Available everywhere")
	}
	h.cloud.settle()
	// No event tells the controller the entry settled: it rechecks
	// settling entries by itself.
	h.eventually("condition once Available everywhere", func() bool {
		c := h.condition("cn-chengdu.i-a")
		return c != nil && c.Status == corev1.ConditionFalse && h.hasEvent("cn-chengdu.i-a", EventRoutePublished, "2 entries")
	})
	if got := observations(t, h.reg, "vpc_route_publisher_route_convergence_seconds"); got != 1 {
		t.Errorf("convergence observations = %d, want 1", got)
	}
	h.cloud.do(func(c *fakeCloud) {
		for k, n := range c.createdKeys {
			if n != 1 {
				t.Errorf("%v created %d times while Pending", k, n)
			}
		}
	})
}

func TestControllerExcludedNodes(t *testing.T) {
	ex := testNode("i-b", "10.0.2.0/24")
	ex.Labels[DefaultExcludeNodeLabel] = "true"
	ccm := testNode("i-c", "10.0.3.0/24")
	ccm.Labels[CCMExcludeNodeLabel] = "true"
	notReady := testNode("i-d", "10.0.4.0/24")
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), ex, ccm, notReady})
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.3.0/24"), NextHop: "i-c", Owner: testCluster, Node: "cn-chengdu.i-c"})
	h.start()
	h.eventually("routes of included nodes only", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.4.0/24", "i-d"))
	})
	for _, n := range []string{"cn-chengdu.i-b", "cn-chengdu.i-c"} {
		if c := h.condition(n); c != nil {
			t.Errorf("excluded node %s got condition %+v", n, c)
		}
	}
	// Un-excluding enqueues through the label comparison.
	h.updateNode("cn-chengdu.i-b", func(n *corev1.Node) { delete(n.Labels, DefaultExcludeNodeLabel) })
	h.eventually("route after un-excluding", func() bool { return len(h.cloud.snapshot()) == 3 })
}

func TestControllerPerEntryFailures(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24"), testNode("i-c", "10.0.3.0/24")})
	h.cloud.do(func(c *fakeCloud) {
		c.createErr[netip.MustParsePrefix("10.0.2.0/24")] = &apiError{ErrInvalid, "InvalidNextHop.Status"}
	})
	h.start()
	h.eventually("other nodes unaffected", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.3.0/24", "i-c"))
	})
	h.eventually("failure event with the error code", func() bool {
		return h.hasEvent("cn-chengdu.i-b", EventRouteFailed, "with InvalidNextHop.Status")
	})
	h.eventually("failing pass retried with backoff", func() bool {
		return testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultPartial)) >= 3 &&
			testutil.ToFloat64(h.metrics.RouteWrites.WithLabelValues(OpCreate, "invalid")) >= 3
	})
	// One node's refused write is that node's problem: the passes ran,
	// so they are not counted as failed and the sync is not stale.
	if n := testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultError)); n != 0 {
		t.Errorf("reconciles_total{result=error} = %v, want 0: every pass ran", n)
	}
	ranAt := testutil.ToFloat64(h.metrics.LastSuccessfulSync)
	h.eventually("the last sync timestamp to advance while the entry fails", func() bool {
		return testutil.ToFloat64(h.metrics.LastSuccessfulSync) > ranAt
	})
	if got := countPrefix(h.events("cn-chengdu.i-b"), EventRouteFailed); got != 1 {
		t.Errorf("RouteFailed emitted %d times, want once while it persists", got)
	}
	c := h.condition("cn-chengdu.i-b")
	if c == nil || c.Status != corev1.ConditionTrue {
		t.Errorf("failing node condition = %+v, want True/NoRouteCreated", c)
	}
	h.cloud.do(func(c *fakeCloud) { clear(c.createErr) })
	h.eventually("recovered", func() bool {
		c := h.condition("cn-chengdu.i-b")
		return len(h.cloud.snapshot()) == 3 && c.Status == corev1.ConditionFalse
	})
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix+":") {
			n++
		}
	}
	return n
}

func TestControllerTransientErrorsRetrySooner(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withConfig(func(c *Config) {
		// Hard failures back off towards an hour (16 of them would take
		// 5ms*2^16 > 5m); transient ones are capped at 20ms.
		c.MinRetryDelay, c.MaxRetryDelay, c.MaxRetryableDelay = 5*time.Millisecond, time.Hour, 20*time.Millisecond
	}))
	busy := &apiError{ErrBusy, "TaskConflict"}
	h.cloud.do(func(c *fakeCloud) { c.createErr[netip.MustParsePrefix("10.0.1.0/24")] = busy })
	h.start()
	h.eventually("many quick retries of busy writes", func() bool {
		return testutil.ToFloat64(h.metrics.RouteWrites.WithLabelValues(OpCreate, "busy")) >= 16
	})
	if got := testutil.ToFloat64(h.metrics.Leader); got != 1 {
		t.Errorf("leader gauge = %v while running", got)
	}
	h.cloud.do(func(c *fakeCloud) { clear(c.createErr) })
	h.eventually("route after the VPC is free", func() bool { return h.has(entry("vtb-1", "10.0.1.0/24", "i-a")) })
}

func TestControllerQuotaPerNode(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24"), testNode("i-c", "10.0.3.0/24")})
	h.cloud.do(func(c *fakeCloud) { c.tables[0].Quota = 2 })
	h.start()
	h.eventually("quota problem for one node", func() bool {
		return len(h.cloud.snapshot()) == 2 &&
			testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonQuotaExceeded)) == 1 &&
			testutil.ToFloat64(h.metrics.QuotaUsed.WithLabelValues("vtb-1")) == 2 &&
			testutil.ToFloat64(h.metrics.QuotaLimit.WithLabelValues("vtb-1")) == 2 &&
			h.entries("vtb-1", EntriesMissing) == 1
	})
	h.eventually("quota event on the node", func() bool {
		return h.hasEvent("cn-chengdu.i-c", EventRouteFailed, "QuotaExceeded.Route")
	})
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := rep.Tables[0].Headroom; h == nil || *h != 0 {
		t.Errorf("headroom = %v, want 0", h)
	}
}

func TestControllerBlackholes(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24"), testNode("i-c", "10.0.3.0/24")})
	h.start()
	h.eventually("routes", func() bool { return len(h.cloud.snapshot()) == 3 })

	h.inst.do(func(f *fakeInstances) { f.stopped["i-a"] = true; f.released["i-b"] = true })
	h.ctrl.Enqueue()
	h.eventually("released instance's route deleted, stopped one kept", func() bool {
		return h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.3.0/24", "i-c")) &&
			h.entries("vtb-1", EntriesBlackhole) == 1 &&
			testutil.ToFloat64(h.metrics.Problems.WithLabelValues(ReasonInstanceReleased)) == 1
	})
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blackholes) != 1 || rep.Blackholes[0].InstanceStatus != InstanceStopped || rep.Blackholes[0].Action != "kept" {
		t.Errorf("blackholes = %+v", rep.Blackholes)
	}
}

func TestControllerDeletesSeriesOfVanishedTables(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withTables("vtb-1", "vtb-2"))
	h.start()
	h.eventually("both tables", func() bool { return h.entries("vtb-2", EntriesPresent) == 1 })
	h.cloud.do(func(c *fakeCloud) {
		c.tables = c.tables[:1]
		for k := range c.entries {
			if k.Table == "vtb-2" {
				delete(c.entries, k)
			}
		}
	})
	h.ctrl.Enqueue()
	h.eventually("vtb-2 series gone", func() bool {
		return testutil.CollectAndCount(h.metrics.RouteEntries) == len(entryStates) &&
			testutil.CollectAndCount(h.metrics.QuotaUsed) == 1 && testutil.CollectAndCount(h.metrics.QuotaLimit) == 1
	})
}

// TestControllerCoalescesBursts: every event of a burst that arrives
// within the coalescing delay is handled by one pass, hence one create
// batch. The delay runs on a fake clock that the test steps only once the
// whole burst has been delivered, so the property holds whatever the
// scheduler does.
func TestControllerCoalescesBursts(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	h := newHarness(t, nil, withClock(clk), withConfig(func(c *Config) { c.Coalesce = 200 * time.Millisecond }))
	h.cloud.do(func(c *fakeCloud) { c.tables[0].Quota = 1000 })
	h.start()
	h.eventually("the first pass", func() bool { return h.passes() == 1 })
	var want []string
	for i := range 300 {
		inst := fmt.Sprintf("i-%03d", i)
		dst := fmt.Sprintf("10.0.%d.%d/28", i/16, (i%16)*16)
		want = append(want, entry("vtb-1", dst, inst))
		if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, testNode(inst, dst), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.eventually("every node event delivered", func() bool {
		h.ctrl.noticed.mu.Lock()
		defer h.ctrl.noticed.mu.Unlock()
		return len(h.ctrl.noticed.at) == 300
	})
	if h.passes() != 1 {
		t.Fatalf("a pass ran before the coalescing delay elapsed (%v passes)", h.passes())
	}
	clk.Step(200 * time.Millisecond)
	h.eventually("every route", func() bool { return h.has(want...) })
	h.cloud.do(func(c *fakeCloud) {
		if c.createCalls != 1 {
			t.Errorf("a burst of 300 node adds took %d create batches, want 1", c.createCalls)
		}
	})
}

func TestNodeChangedFiltersUpdates(t *testing.T) {
	h := newHarness(t, nil)
	base := testNode("i-a", "10.0.1.0/24")
	for _, tc := range []struct {
		name   string
		mutate func(n *corev1.Node)
		want   bool
	}{
		{"heartbeat", func(n *corev1.Node) { n.Status.Conditions[0].LastHeartbeatTime = metav1.Now() }, false},
		{"our condition", func(n *corev1.Node) {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable})
		}, false},
		{"other label", func(n *corev1.Node) { n.Labels["x"] = "y" }, false},
		{"pod CIDR", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.0.2.0/24"} }, true},
		{"provider ID", func(n *corev1.Node) { n.Spec.ProviderID = "cn-chengdu.i-b" }, true},
		{"internal IP", func(n *corev1.Node) { n.Status.Addresses[0].Address = "192.168.0.11" }, true},
		{"exclude label", func(n *corev1.Node) { n.Labels[DefaultExcludeNodeLabel] = "true" }, true},
		{"CCM exclude label", func(n *corev1.Node) { n.Labels[CCMExcludeNodeLabel] = "true" }, true},
	} {
		n := base.DeepCopy()
		tc.mutate(n)
		if got := h.ctrl.nodeChanged(base, n); got != tc.want {
			t.Errorf("%s: nodeChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name string
		f    func(c *Config)
	}{
		{"no cluster ID", func(c *Config) { c.Policy.ClusterID = "" }},
		{"cluster ID with separator", func(c *Config) { c.Policy.ClusterID = "a;b" }},
		{"no cluster CIDR", func(c *Config) { c.Policy.ClusterCIDRs = nil }},
		{"unmasked cluster CIDR", func(c *Config) { c.Policy.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/16")} }},
		{"ratio above 1", func(c *Config) { c.Policy.MaxDeleteRatio = 2 }},
	} {
		cfg := h.cfg
		cfg.Policy.ClusterCIDRs = append([]netip.Prefix(nil), cfg.Policy.ClusterCIDRs...)
		tc.f(&cfg)
		if _, err := New(cfg, Deps{Kube: h.kube, Nodes: h.factory.Core().V1().Nodes(), Source: h.source, Table: h.cloud, Instances: h.inst, Metrics: h.metrics}); err == nil {
			t.Errorf("%s: New accepted the config", tc.name)
		}
	}
	if _, err := New(h.cfg, Deps{Kube: h.kube}); err == nil {
		t.Error("New accepted missing dependencies")
	}
}

func TestControllerRunLeavesNoGoroutines(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")})
	h.startInformers()
	h.eventually("informer synced", func() bool { return h.factory.Core().V1().Nodes().Informer().HasSynced() })
	baseline := runtime.NumGoroutine()
	h.start()
	h.eventually("route", func() bool { return h.has(entry("vtb-1", "10.0.1.0/24", "i-a")) })
	h.stop()
	h.eventually(fmt.Sprintf("goroutines back to %d", baseline), func() bool { return runtime.NumGoroutine() <= baseline })
}

func TestMetricNamesMatchTheContract(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")})
	h.start()
	h.eventually("route", func() bool { return h.has(entry("vtb-1", "10.0.1.0/24", "i-a")) })
	h.settledPass()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "vpc_route_publisher_") {
			continue
		}
		var names []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		labels[mf.GetName()] = strings.Join(names, ",")
	}
	want := map[string]string{
		"vpc_route_publisher_route_entries":                          "state,table",
		"vpc_route_publisher_route_table_quota_used":                 "table",
		"vpc_route_publisher_route_table_quota_limit":                "table",
		"vpc_route_publisher_reconcile_duration_seconds":             "",
		"vpc_route_publisher_reconciles_total":                       "result",
		"vpc_route_publisher_route_convergence_seconds":              "",
		"vpc_route_publisher_route_writes_total":                     "operation,result",
		"vpc_route_publisher_last_successful_sync_timestamp_seconds": "",
		"vpc_route_publisher_leader":                                 "",
		"vpc_route_publisher_safety_valve_tripped":                   "cause",
		"vpc_route_publisher_safety_valve_trips_total":               "cause",
		"vpc_route_publisher_safety_valve_window_base":               "",
		"vpc_route_publisher_safety_valve_budget_remaining":          "",
		"vpc_route_publisher_dry_run":                                "",
	}
	// problems{reason} has no series while there is no problem.
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("metrics = %v\nwant %v", labels, want)
	}
	if err := testutil.CollectAndCompare(h.metrics.RouteEntries, strings.NewReader(`
# HELP vpc_route_publisher_route_entries Route entries per route table by state: desired, present (in sync), missing, unexpected (owned but not desired), conflicting, pending, blackhole (next hop stopped or released), source_dest_check (present but the next hop's ENI has the source/destination check on, so it carries no traffic).
# TYPE vpc_route_publisher_route_entries gauge
vpc_route_publisher_route_entries{state="blackhole",table="vtb-1"} 0
vpc_route_publisher_route_entries{state="conflicting",table="vtb-1"} 0
vpc_route_publisher_route_entries{state="desired",table="vtb-1"} 1
vpc_route_publisher_route_entries{state="missing",table="vtb-1"} 0
vpc_route_publisher_route_entries{state="pending",table="vtb-1"} 0
vpc_route_publisher_route_entries{state="present",table="vtb-1"} 1
vpc_route_publisher_route_entries{state="source_dest_check",table="vtb-1"} 0
vpc_route_publisher_route_entries{state="unexpected",table="vtb-1"} 0
`)); err != nil {
		t.Error(err)
	}
}

// Convergence latency is measured from the node event, so it includes the
// coalescing window and the queue, not only the pass that wrote the route.
func TestControllerConvergenceStartsAtTheNodeEvent(t *testing.T) {
	const coalesce = 300 * time.Millisecond
	h := newHarness(t, nil, withConfig(func(c *Config) { c.Coalesce = coalesce }))
	h.start()
	h.settledPass()

	n := testNode("i-late", "10.0.7.0/24")
	if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("route of the new node", func() bool { return h.has(entry("vtb-1", "10.0.7.0/24", "i-late")) })
	h.eventually("one convergence observation", func() bool {
		return observations(t, h.reg, "vpc_route_publisher_route_convergence_seconds") == 1
	})
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "vpc_route_publisher_route_convergence_seconds" {
			continue
		}
		if sum := mf.GetMetric()[0].GetHistogram().GetSampleSum(); sum < coalesce.Seconds() {
			t.Errorf("convergence of the new node = %.3fs, shorter than the %s coalescing window it waited for", sum, coalesce)
		}
		return
	}
	t.Fatal("convergence histogram not gathered")
}
