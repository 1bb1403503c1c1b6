//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

const (
	nodeR = "cn-chengdu.i-2vcxxr"
	nodeS = "cn-chengdu.i-2vcxxs"
	nodeT = "cn-chengdu.i-2vcxxt"
)

func entriesMetric(table, state string) map[string]string {
	return map[string]string{"table": table, "state": state}
}

// TestPublishesNodeRoutes: both accepted providerID forms, routes published
// with the ownership marker, Available, and only then the node's
// NetworkUnavailable condition cleared.
func TestPublishesNodeRoutes(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, "cn-chengdu.i-2vcxxr", "10.244.0.0/24"))
	s.createNode(node(nodeS, "alicloud://cn-chengdu.i-2vcxxs", "10.244.1.0/24"))
	p := s.start(s.options())

	es := s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	for _, e := range es {
		if !strings.Contains(e.Description, "managed-by=vpc-route-publisher") || !strings.Contains(e.Description, "cluster="+clusterID) {
			t.Errorf("entry %s carries no ownership marker of cluster %s: description %q", e.Destination, clusterID, e.Description)
		}
		if e.NextHopType != alisim.NextHopInstance {
			t.Errorf("entry %s has next hop type %q, want Instance", e.Destination, e.NextHopType)
		}
	}
	s.waitNodeCondition(nodeR)
	s.waitNodeCondition(nodeS)
	s.waitEvent(nodeR, "RoutePublished")

	m := s.waitMetric(p, "2 desired, 2 present, 0 missing", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "desired")) == 2 &&
			m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "present")) == 2 &&
			m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "missing")) == 0
	})
	if m.Get("vpc_route_publisher_leader", nil) != 1 {
		t.Errorf("the only replica does not report itself leader")
	}
	if m.Get("vpc_route_publisher_route_convergence_seconds", nil) < 2 {
		t.Errorf("convergence histogram has %v observations, want one per route", m.Get("vpc_route_publisher_route_convergence_seconds", nil))
	}
	if err := p.Ready(s.ctx); err != nil {
		t.Errorf("the leader is not ready after converging: %v", err)
	}
}

// TestConditionWaitsForAvailable: with a cloud that keeps new entries
// Pending for seconds, no node's NetworkUnavailable condition is cleared
// before its entry is Available.
func TestConditionWaitsForAvailable(t *testing.T) {
	s := newScenario(t)
	slow, err := framework.StartAlisim(s.ctx, framework.AlisimOptions{
		Bin:       filepath.Join(env.Paths.Bin, "alisim"),
		Dir:       filepath.Join(s.dir, "slow-alisim"),
		RAMPolicy: filepath.Join(env.Paths.Root, "deploy", "ram-policy.json"),
		ExtraArgs: []string{"--write-base=3s"},
	})
	if err != nil {
		t.Fatalf("starting a slow simulator: %v", err)
	}
	t.Cleanup(func() { _ = slow.Stop() })
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	s.startWith(slow, s.options())

	var sawPending bool
	err = framework.Poll(s.ctx, 100*time.Millisecond, waitTimeout, func(ctx context.Context) (bool, error) {
		es, err := slow.CustomRoutes(ctx, "")
		if err != nil {
			return false, err
		}
		available := map[string]bool{}
		for _, e := range es {
			if e.Status == alisim.StatusPending {
				sawPending = true
			}
			if e.Status == alisim.StatusAvailable {
				available[e.NextHopID] = true
			}
		}
		done := true
		for name, inst := range map[string]string{nodeR: "i-2vcxxr", nodeS: "i-2vcxxs"} {
			c := s.nodeCondition(name)
			cleared := c != nil && c.Status == corev1.ConditionFalse
			if cleared && !available[inst] {
				return false, framework.Permanent(fmt.Errorf("node %s has NetworkUnavailable=False while its entry is not Available: %s", name, routeTable(es)))
			}
			done = done && cleared
		}
		return done, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawPending {
		t.Errorf("never saw a Pending entry: the simulator's --write-base did not take effect and the test proved nothing")
	}
}

// TestNodeLifecycle: a deleted node's route is removed; a node re-created
// with another podCIDR (podCIDR is immutable) gets its old route removed and
// the new one published.
func TestNodeLifecycle(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	s.start(s.options())
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})

	s.deleteNode(nodeS)
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr"})

	s.deleteNode(nodeR)
	s.createNode(node(nodeR, nodeR, "10.244.3.0/24"))
	s.waitTable(want{"10.244.3.0/24": "i-2vcxxr"})
	s.waitNodeCondition(nodeR)
}

// TestRepairsDrift: an owned entry deleted or re-pointed out of band is
// repaired within one resync, and the drift gauges rise while the drift
// cannot be repaired and fall back to 0 once it is.
func TestRepairsDrift(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	o := s.options()
	o.ResyncPeriod = 3 * time.Second
	p := s.start(o)
	desired := want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"}
	s.waitTable(desired)
	s.waitPassDone(p)

	// Deleted out of band: back within one resync period (plus the time a
	// pass takes on a loaded machine).
	deleted := time.Now()
	if err := env.Sim.DeleteRoute(s.ctx, s.entry("10.244.0.0/24").ID); err != nil {
		t.Fatalf("deleting an entry out of band: %v", err)
	}
	s.waitTable(desired)
	if took := time.Since(deleted); took > o.ResyncPeriod+10*time.Second {
		t.Errorf("a deleted entry took %s to be repaired, want about one resync (%s)", took, o.ResyncPeriod)
	}

	s.waitPassDone(p)

	// Re-pointed out of band at another instance: repaired too.
	other := "i-2vcxxt"
	if err := env.Sim.ModifyRoute(s.ctx, s.entry("10.244.1.0/24").ID, alisim.RouteEdit{NextHopID: &other}); err != nil {
		t.Fatalf("re-pointing an entry out of band: %v", err)
	}
	s.waitTable(desired)
	s.waitPassDone(p)

	// While writes fail, the drift is visible in the gauges...
	if err := env.Sim.InjectFault(s.ctx, alisim.Fault{Action: "CreateRouteEntries", Code: "Forbidden.RAM", HTTPStatus: 403}); err != nil {
		t.Fatalf("injecting a fault: %v", err)
	}
	if err := env.Sim.InjectFault(s.ctx, alisim.Fault{Action: "CreateRouteEntry", Code: "Forbidden.RAM", HTTPStatus: 403}); err != nil {
		t.Fatalf("injecting a fault: %v", err)
	}
	if err := env.Sim.DeleteRoute(s.ctx, s.entry("10.244.1.0/24").ID); err != nil {
		t.Fatalf("deleting an entry out of band: %v", err)
	}
	s.waitMetric(p, "missing=1", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "missing")) == 1
	})
	// ...and fall back to 0 once they succeed again.
	if err := env.Sim.ClearFaults(s.ctx); err != nil {
		t.Fatalf("clearing faults: %v", err)
	}
	s.waitTable(desired)
	s.waitMetric(p, "missing=0 and unexpected=0", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "missing")) == 0 &&
			m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "unexpected")) == 0 &&
			m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "present")) == 2
	})
}

// TestForeignEntriesAreLeftAlone: an unmarked entry on another destination
// (inside and outside the cluster CIDR) is never touched; one on a desired
// destination is a conflict, reported and left alone.
func TestForeignEntriesAreLeftAlone(t *testing.T) {
	s := newScenario(t)
	outside := s.putForeign("172.16.0.0/24", "i-2vcxxt")
	inside := s.putForeign("10.244.9.0/24", "i-2vcxxt")
	conflict := s.putForeign("10.244.1.0/24", "i-2vcxxt")
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	p := s.start(s.options())
	s.probed(p)

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxt", "10.244.9.0/24": "i-2vcxxt", "172.16.0.0/24": "i-2vcxxt"})
	msg := s.waitEvent(nodeS, "RouteConflict")
	if !strings.Contains(msg, "10.244.1.0/24") {
		t.Errorf("RouteConflict event does not name the destination: %q", msg)
	}
	s.waitMetric(p, "conflicting=1", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "conflicting")) == 1
	})
	for _, e := range []alisim.RouteEntry{outside, inside, conflict} {
		got := s.entry(e.Destination.String())
		if got.ID != e.ID || got.NextHopID != e.NextHopID || got.Description != e.Description || got.Name != e.Name {
			t.Errorf("foreign entry %s was modified: before %+v, after %+v", e.Destination, e, got)
		}
	}
	if c := s.nodeCondition(nodeS); c != nil && c.Reason == "RouteCreated" {
		t.Errorf("node %s with a conflicting route got NetworkUnavailable cleared: %+v", nodeS, c)
	}
	if n := s.counter("DeleteRouteEntries") + s.counter("DeleteRouteEntry") + s.counter("ModifyRouteEntry"); n != 0 {
		t.Errorf("the publisher issued %d delete/modify calls with only foreign entries to keep", n)
	}
}

// TestAdoptUnmarked: with --adopt-unmarked, an unmarked entry exactly
// matching a desired route (as the CCM leaves them) is adopted in place:
// same entry, now carrying the marker.
func TestAdoptUnmarked(t *testing.T) {
	s := newScenario(t)
	legacy := s.putForeign("10.244.0.0/24", "i-2vcxxr")
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	o := s.options()
	o.ExtraArgs = []string{"--adopt-unmarked"}
	s.start(o)

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr"})
	var got alisim.RouteEntry
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(context.Context) (bool, error) {
		got = s.entry("10.244.0.0/24")
		return strings.Contains(got.Description, "cluster="+clusterID), nil
	}); err != nil {
		t.Fatalf("the legacy entry was never adopted: %v; entry %+v", err, got)
	}
	if got.ID != legacy.ID {
		t.Errorf("adoption replaced the entry (%s → %s) instead of stamping it", legacy.ID, got.ID)
	}
	s.waitNodeCondition(nodeR)
}
