//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

const (
	clusterID = "e2e-cluster"
	// waitTimeout bounds every wait on convergence; with a 3s resync and a
	// 100ms coalesce, the suite's scenarios converge in a few seconds.
	waitTimeout = 60 * time.Second
	pollEvery   = 200 * time.Millisecond
)

var (
	clusterCIDRs = []string{"10.244.0.0/16", "fd00:10:244::/56"}
	ippoolGVR    = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderippools"}
)

// scenario is one test's handle on the shared environment. newScenario
// resets the environment to a clean slate first: no nodes, no pools, the
// simulator in its initial state, so that no test depends on another.
type scenario struct {
	t   *testing.T
	ctx context.Context
	dir string
	n   int
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	// Logs go below the suite's directory, which is kept when a test fails
	// (see TestMain), rather than into t.TempDir, which is not.
	s := &scenario{t: t, ctx: ctx, dir: filepath.Join(env.Dir, "tests", t.Name())}
	s.reset()
	return s
}

// reset deletes every Node, SpiderIPPool and Calico IPAM object and resets
// the simulator.
func (s *scenario) reset() {
	s.t.Helper()
	ctx := s.ctx
	if err := env.Kube.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		s.t.Fatalf("deleting nodes: %v", err)
	}
	if err := env.Dynamic.Resource(ippoolGVR).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		s.t.Fatalf("deleting SpiderIPPools: %v", err)
	}
	s.resetCalico()
	if err := env.Sim.Reset(ctx); err != nil {
		s.t.Fatalf("resetting the simulator: %v", err)
	}
}

// options returns the default publisher options of the suite.
func (s *scenario) options() framework.PublisherOptions {
	s.n++
	return framework.PublisherOptions{
		Bin:            filepath.Join(env.Paths.Bin, "vpc-route-publisher"),
		Name:           fmt.Sprintf("publisher-%d", s.n),
		Dir:            s.dir,
		Kubeconfig:     env.PublisherKubeconfig,
		LeaseNamespace: env.ServiceAccountNamespace,
		ClusterID:      clusterID,
		ClusterCIDRs:   clusterCIDRs,
	}
}

// start starts a replica, stopped (SIGTERM, then SIGKILL) at the end of the
// test; its log tail is printed when the test failed.
func (s *scenario) start(o framework.PublisherOptions) *framework.Publisher {
	s.t.Helper()
	return s.startWith(env.Sim, o)
}

// startWith is start against another simulator than the suite's.
func (s *scenario) startWith(sim *framework.Alisim, o framework.PublisherOptions) *framework.Publisher {
	s.t.Helper()
	p, err := framework.StartPublisher(s.ctx, sim, o)
	if err != nil {
		s.t.Fatalf("starting %s: %v", o.Name, err)
	}
	s.t.Cleanup(func() {
		if err := p.Stop(framework.DefaultStopTimeout); err != nil {
			s.t.Errorf("stopping %s: %v", p.Name, err)
		}
		if s.t.Failed() {
			s.t.Logf("--- last lines of %s ---\n%s", p.Name, p.LogTail(60))
		}
	})
	return p
}

// node builds a Node object. podCIDRs may be empty (a node the IPAM has not
// served yet).
func node(name, providerID string, podCIDRs ...string) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{ProviderID: providerID, PodCIDRs: podCIDRs},
	}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	return n
}

func (s *scenario) createNode(n *corev1.Node) {
	s.t.Helper()
	if _, err := env.Kube.CoreV1().Nodes().Create(s.ctx, n, metav1.CreateOptions{}); err != nil {
		s.t.Fatalf("creating node %s: %v", n.Name, err)
	}
}

func (s *scenario) deleteNode(name string) {
	s.t.Helper()
	if err := env.Kube.CoreV1().Nodes().Delete(s.ctx, name, metav1.DeleteOptions{}); err != nil {
		s.t.Fatalf("deleting node %s: %v", name, err)
	}
}

// want is an expected custom route table: destination → next hop.
type want map[string]string

// routeTable renders the custom entries of the default table as
// "destination→nexthop(status)" lines for messages.
func routeTable(es []alisim.RouteEntry) string {
	var lines []string
	for _, e := range es {
		lines = append(lines, fmt.Sprintf("%s→%s(%s,%q)", e.Destination, e.NextHopID, e.Status, e.Description))
	}
	sort.Strings(lines)
	return "[" + strings.Join(lines, " ") + "]"
}

// waitTable waits until the custom entries of the default table are exactly
// w, all Available.
func (s *scenario) waitTable(w want) []alisim.RouteEntry {
	s.t.Helper()
	var last []alisim.RouteEntry
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		es, err := env.Sim.CustomRoutes(ctx, "")
		if err != nil {
			return false, err
		}
		last = es
		if len(es) != len(w) {
			return false, nil
		}
		for _, e := range es {
			if w[e.Destination.String()] != e.NextHopID || e.Status != alisim.StatusAvailable {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		s.t.Fatalf("route table did not converge to %v: %v; last: %s", w, err, routeTable(last))
	}
	return last
}

// entry returns the custom entry for destination, failing when absent.
func (s *scenario) entry(dst string) alisim.RouteEntry {
	s.t.Helper()
	es, err := env.Sim.CustomRoutes(s.ctx, "")
	if err != nil {
		s.t.Fatalf("listing routes: %v", err)
	}
	for _, e := range es {
		if e.Destination == netip.MustParsePrefix(dst) {
			return e
		}
	}
	s.t.Fatalf("no entry for %s in %s", dst, routeTable(es))
	return alisim.RouteEntry{}
}

// putForeign adds an unmarked entry out of band, as a user would.
func (s *scenario) putForeign(dst, nextHop string) alisim.RouteEntry {
	s.t.Helper()
	e, err := env.Sim.PutRoute(s.ctx, alisim.RouteEntry{
		Destination: netip.MustParsePrefix(dst),
		NextHopType: alisim.NextHopInstance,
		NextHopID:   nextHop,
		Name:        "user-route",
		Description: "added by hand",
	})
	if err != nil {
		s.t.Fatalf("adding foreign entry %s: %v", dst, err)
	}
	return e
}

// waitMetric waits until cond holds for a scrape of p's /metrics.
func (s *scenario) waitMetric(p *framework.Publisher, what string, cond func(framework.Metrics) bool) framework.Metrics {
	s.t.Helper()
	var last framework.Metrics
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		m, err := p.Metrics(ctx)
		if err != nil {
			return false, err
		}
		last = m
		return cond(m), nil
	})
	if err != nil {
		s.t.Fatalf("metrics of %s never showed %s: %v; entries: %v; problems: %v", p.Name, what, err,
			last.Series("vpc_route_publisher_route_entries"), last.Series("vpc_route_publisher_problems"))
	}
	return last
}

// waitLeader waits until one of ps leads and returns it.
func (s *scenario) waitLeader(ps ...*framework.Publisher) *framework.Publisher {
	s.t.Helper()
	var leader *framework.Publisher
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		for _, p := range ps {
			if exited, _ := p.Exited(); !exited && p.IsLeader(ctx) {
				leader = p
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no replica became leader: %v", err)
	}
	return leader
}

// waitNodeCondition waits until the node's NetworkUnavailable condition is
// False with reason RouteCreated.
func (s *scenario) waitNodeCondition(name string) {
	s.t.Helper()
	var last *corev1.NodeCondition
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for i, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable {
				last = &n.Status.Conditions[i]
				return c.Status == corev1.ConditionFalse && c.Reason == "RouteCreated", nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("node %s never got NetworkUnavailable=False/RouteCreated: %v; last: %+v", name, err, last)
	}
}

// nodeCondition returns the node's NetworkUnavailable condition, or nil.
func (s *scenario) nodeCondition(name string) *corev1.NodeCondition {
	s.t.Helper()
	n, err := env.Kube.CoreV1().Nodes().Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatalf("getting node %s: %v", name, err)
	}
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// waitEvent waits for an event with reason on the named object (any
// namespace), and returns its message.
func (s *scenario) waitEvent(objectName, reason string) string {
	s.t.Helper()
	var msg string
	var seen []string
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		evs, err := env.Kube.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			if e.InvolvedObject.Name != objectName {
				continue
			}
			seen = append(seen, e.Reason)
			if e.Reason == reason {
				msg = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no %s event on %s: %v; seen reasons: %v", reason, objectName, err, seen)
	}
	return msg
}

// counter sums the simulator's call counters of action for the given codes
// (all codes when none given).
func (s *scenario) counter(action string, codes ...string) int {
	s.t.Helper()
	cs, err := env.Sim.Counters(s.ctx)
	if err != nil {
		s.t.Fatalf("reading simulator counters: %v", err)
	}
	n := 0
	for code, v := range cs[action] {
		if len(codes) == 0 || slices.Contains(codes, code) {
			n += v
		}
	}
	return n
}

// writeCalls is the number of route writes the simulator answered, whatever
// the outcome.
func (s *scenario) writeCalls() int {
	return s.counter("CreateRouteEntries") + s.counter("CreateRouteEntry") +
		s.counter("DeleteRouteEntries") + s.counter("DeleteRouteEntry") + s.counter("ModifyRouteEntry")
}

// probed waits until p is ready, i.e. has proven its RAM permissions, and
// zeroes the simulator's call counters. The permission probes make route
// write calls that write nothing (a destination the VPC refuses); tests
// that count write calls start counting after them (the suite probes once
// at start, see framework.StartPublisher).
func (s *scenario) probed(p *framework.Publisher) {
	s.t.Helper()
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		return p.Ready(ctx) == nil, nil
	}); err != nil {
		s.t.Fatalf("%s never became ready: %v", p.Name, err)
	}
	if err := env.Sim.ResetCounters(s.ctx); err != nil {
		s.t.Fatalf("resetting counters: %v", err)
	}
}

// holds checks cond every poll interval for d and fails the test at the
// first violation: for states that must persist, not merely be reached.
func (s *scenario) holds(d time.Duration, cond func(context.Context) error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		if err := cond(s.ctx); err != nil {
			s.t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// waitPassDone waits until p completes a successful pass that ended after
// now. Out-of-band changes made while a pass is still waiting for its own
// writes to become Available would test that wait, not drift repair.
func (s *scenario) waitPassDone(p *framework.Publisher) {
	s.t.Helper()
	since := float64(time.Now().UnixNano()) / 1e9
	s.waitMetric(p, "a successful pass", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_last_successful_sync_timestamp_seconds", nil) > since
	})
}
