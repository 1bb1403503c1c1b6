//go:build e2e

package e2e

import (
	"context"
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
