//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// createPool creates a SpiderIPPool pinned to node.
func (s *scenario) createPool(name, node, subnet string, ips ...string) {
	s.t.Helper()
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1",
		"kind":       "SpiderIPPool",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"subnet":   subnet,
			"ips":      toAny(ips),
			"nodeName": []any{node},
		},
	}}
	if _, err := env.Dynamic.Resource(ippoolGVR).Create(s.ctx, pool, metav1.CreateOptions{}); err != nil {
		s.t.Fatalf("creating SpiderIPPool %s: %v", name, err)
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestSpiderpoolMode: per-node SpiderIPPools are the source of truth; each
// pool is routed (as the smallest prefix covering its IPs) to its node.
func TestSpiderpoolMode(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	s.createPool("pool-r", nodeR, "10.244.0.0/16", "10.244.0.1-10.244.0.253")
	s.createPool("pool-s", nodeS, "10.244.0.0/16", "10.244.1.1-10.244.1.100")
	o := s.options()
	o.CIDRSource = "spiderpool"
	s.start(o)

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/25": "i-2vcxxs"})
	s.waitNodeCondition(nodeR)

	// A pool for a third node: routed once created.
	s.createNode(node(nodeT, nodeT, "10.244.2.0/24"))
	s.createPool("pool-t", nodeT, "10.244.0.0/16", "10.244.2.1-10.244.2.10")
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/25": "i-2vcxxs", "10.244.2.0/28": "i-2vcxxt"})
}

// TestAutoModeReportsPoolOutsidePodCIDR: in auto mode the nodes' podCIDRs
// are routed and, with the SpiderIPPool CRD installed, a pool outside its
// node's podCIDR is reported on the pool (event and problems metric).
func TestAutoModeReportsPoolOutsidePodCIDR(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	s.createPool("pool-r", nodeR, "10.244.0.0/16", "10.244.0.1-10.244.0.253")
	s.createPool("pool-s-misplaced", nodeS, "10.244.0.0/16", "10.244.7.1-10.244.7.10")
	p := s.start(s.options()) // --cidr-source defaults to auto

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	msg := s.waitEvent("pool-s-misplaced", "RouteProblem")
	if !strings.Contains(msg, "10.244.7.1") || !strings.Contains(msg, nodeS) {
		t.Errorf("the problem event does not name the pool's IPs and node: %q", msg)
	}
	s.waitMetric(p, "problems{reason=PoolOutsidePodCIDR}=1", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_problems", map[string]string{"reason": "PoolOutsidePodCIDR"}) == 1
	})
}

// TestDualStack: a dual-stack node gets an IPv4 and an IPv6 route.
func TestDualStack(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24", "fd00:10:244::/64"))
	s.start(s.options())
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "fd00:10:244::/64": "i-2vcxxr"})
	s.waitNodeCondition(nodeR)
}

// TestAudit: `vpc-route-publisher audit` against the live system exits 0 in
// sync and 1 with drift, naming the drifted row.
func TestAudit(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	p := s.start(s.options())
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	if err := p.Stop(framework.DefaultStopTimeout); err != nil {
		t.Fatalf("stopping the publisher: %v", err)
	}
	if err := env.Sim.ResetCounters(s.ctx); err != nil {
		t.Fatalf("resetting counters: %v", err)
	}

	o := s.options()
	res, err := framework.RunAudit(s.ctx, env.Sim, o, "table")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("audit of a synced system exited %d, want 0:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	for _, row := range []string{"10.244.0.0/24", "10.244.1.0/24", "i-2vcxxr", "i-2vcxxs"} {
		if !strings.Contains(res.Stdout, row) {
			t.Errorf("audit table lacks %q:\n%s", row, res.Stdout)
		}
	}

	if err := env.Sim.DeleteRoute(s.ctx, s.entry("10.244.1.0/24").ID); err != nil {
		t.Fatalf("deleting an entry out of band: %v", err)
	}
	res, err = framework.RunAudit(s.ctx, env.Sim, o, "table")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 {
		t.Fatalf("audit with a missing route exited %d, want 1:\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	var driftRow string
	for _, line := range strings.Split(res.Stdout, "\n") {
		if strings.Contains(line, "10.244.1.0/24") {
			driftRow = line
		}
	}
	if !strings.Contains(strings.ToLower(driftRow), "create") && !strings.Contains(strings.ToLower(driftRow), "missing") {
		t.Errorf("audit row of the deleted route does not say it is missing: %q\n%s", driftRow, res.Stdout)
	}

	res, err = framework.RunAudit(s.ctx, env.Sim, o, "json")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || !json.Valid([]byte(res.Stdout)) {
		t.Errorf("audit -o json: exit %d, valid JSON %v:\n%s\n%s", res.ExitCode, json.Valid([]byte(res.Stdout)), res.Stdout, res.Stderr)
	}
	if n := s.writeCalls(); n != 0 {
		t.Errorf("audit issued %d route writes; it must never write", n)
	}
}
