//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// TestNetworkUnavailableOnFirstSight: on the real API server, a new node
// without the condition is held NetworkUnavailable=True until its route is
// Available (a node without a pod CIDR stays True), our
// condition is recorded in the node's annotation through the status patch,
// and a True set by someone else (Calico's CalicoIsDown) is never flipped.
func TestNetworkUnavailableOnFirstSight(t *testing.T) {
	s := newScenario(t)
	calico := node(nodeS, nodeS, "10.244.1.0/24")
	s.createNode(calico)
	calico, err := env.Kube.CoreV1().Nodes().Get(s.ctx, nodeS, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calico.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue, Reason: "CalicoIsDown", LastTransitionTime: metav1.Now()}}
	if _, err := env.Kube.CoreV1().Nodes().UpdateStatus(s.ctx, calico, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A node the IPAM has not served yet: nothing to route, held True.
	const ghost = "cn-chengdu.i-2vcxxt"
	s.createNode(node(ghost, ghost))
	s.start(s.options())
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	s.waitNodeCondition(nodeR)
	n, err := env.Kube.CoreV1().Nodes().Get(s.ctx, nodeR, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations["route.vpc-route-publisher.io/network-unavailable"] == "" {
		t.Errorf("the status patch did not record our condition in the node's annotation: %v", n.Annotations)
	}
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(context.Context) (bool, error) {
		c := s.nodeCondition(ghost)
		return c != nil && c.Status == corev1.ConditionTrue && c.Reason == "NoRouteCreated", nil
	}); err != nil {
		t.Errorf("node without a pod CIDR never got NetworkUnavailable=True: %+v", s.nodeCondition(ghost))
	}
	s.holds(3*time.Second, func(context.Context) error {
		if c := s.nodeCondition(nodeS); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "CalicoIsDown" {
			t.Errorf("Calico's condition was flipped: %+v", c)
		}
		return nil
	})
}

// TestNodesDeletedOneByOneAreNeverHeld: a scale-down deleting nodes one at
// a time, a few seconds apart, removes every route, well past the
// --max-delete-ratio; the safety valve never trips (it bounds deleted
// nodes per pass, not over time).
func TestNodesDeletedOneByOneAreNeverHeld(t *testing.T) {
	s := newScenario(t)
	w := s.addNodes(5, 50)
	p := s.start(s.options())
	s.waitTable(w)
	list, err := env.Kube.CoreV1().Nodes().List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		s.deleteNode(n.Name)
		delete(w, n.Spec.PodCIDRs[0])
		s.waitTable(w)
		m, err := p.Metrics(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Get("vpc_route_publisher_safety_valve_trips_total", nil); got != 0 {
			t.Fatalf("the valve tripped %v times while nodes were deleted one by one", got)
		}
	}
}

// TestSpiderpoolStepwiseShrinkIsBounded: pools of existing nodes deleted in
// steps (6 → 3 → 1) delete at most --max-delete-ratio of the owned entries
// within the safety valve's window: the first step goes through, the
// second is withheld, whatever the number of passes in between.
func TestSpiderpoolStepwiseShrinkIsBounded(t *testing.T) {
	s := newScenario(t)
	insts, err := env.Sim.AddInstances(s.ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	w := want{}
	var pools []string
	for i, inst := range insts {
		name := env.Sim.Region + "." + inst.ID
		cidr := fmt.Sprintf("10.244.%d.0/24", 60+i)
		s.createNode(node(name, "alicloud://"+name, cidr))
		pool := fmt.Sprintf("pool-%d", i)
		s.createPool(pool, name, "10.244.0.0/16", fmt.Sprintf("10.244.%d.1-10.244.%d.254", 60+i, 60+i))
		pools = append(pools, pool)
		w[cidr] = inst.ID
	}
	o := s.options()
	o.CIDRSource = "spiderpool"
	// A short window, so that the test can wait for it to start after
	// the routes exist: entries created within a window never enlarge its
	// base.
	o.ExtraArgs = []string{"--safety-valve-window=15s"}
	p := s.start(o)
	s.waitTable(w)
	s.waitMetric(p, "a window based on the 6 owned entries", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_safety_valve_window_base", nil) == 6
	})

	deletePool := func(i int) {
		if err := env.Dynamic.Resource(ippoolGVR).Delete(s.ctx, pools[i], metav1.DeleteOptions{}); err != nil {
			t.Fatalf("deleting %s: %v", pools[i], err)
		}
	}
	for i := range 3 {
		deletePool(i)
		delete(w, fmt.Sprintf("10.244.%d.0/24", 60+i))
	}
	s.waitTable(w) // 3 of 6: exactly the ratio, allowed
	for i := 3; i < 5; i++ {
		deletePool(i)
	}
	s.waitMetric(p, "the not-desired valve tripped", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_safety_valve_tripped", map[string]string{"cause": "not-desired"}) == 1
	})
	es, err := env.Sim.CustomRoutes(s.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Errorf("the second step deleted routes within the window: %s", routeTable(es))
	}
}

// TestNeverInheritAnotherNodesRoute: node B's pod CIDR is handed to new node
// A while no replica runs, and A cannot be mapped to an instance. The next
// replica does not keep B's entry for A: it collects it, and A stays
// NetworkUnavailable.
func TestNeverInheritAnotherNodesRoute(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeS, nodeS, "10.244.7.0/24"))
	first := s.start(s.options())
	s.waitTable(want{"10.244.7.0/24": "i-2vcxxs"})
	if err := first.Stop(framework.DefaultStopTimeout); err != nil {
		t.Fatalf("stopping the replica: %v", err)
	}
	s.deleteNode(nodeS)
	const a = "node-a-without-instance"
	s.createNode(node(a, "", "10.244.7.0/24"))
	s.start(s.options())
	s.waitTable(want{})
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(context.Context) (bool, error) {
		c := s.nodeCondition(a)
		return c != nil && c.Status == corev1.ConditionTrue, nil
	}); err != nil {
		t.Errorf("node A without an instance: condition %+v, want True", s.nodeCondition(a))
	}
}
