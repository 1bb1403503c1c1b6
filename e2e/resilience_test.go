//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// addNodes creates n instances in the simulator and one node per instance
// with consecutive /24 pod CIDRs from 10.244.first.0, and returns the
// expected table.
func (s *scenario) addNodes(n, first int) want {
	s.t.Helper()
	insts, err := env.Sim.AddInstances(s.ctx, n)
	if err != nil {
		s.t.Fatalf("adding %d instances: %v", n, err)
	}
	w := want{}
	for i, inst := range insts {
		cidr := fmt.Sprintf("10.244.%d.0/24", first+i)
		s.createNode(node(env.Sim.Region+"."+inst.ID, "alicloud://"+env.Sim.Region+"."+inst.ID, cidr))
		w[cidr] = inst.ID
	}
	return w
}

// TestLeaderFailover: two replicas; the leader is killed with SIGKILL while
// its batch create is in flight in the cloud; the other replica takes over
// and the final table is exact, without duplicates, the foreign entry
// untouched.
func TestLeaderFailover(t *testing.T) {
	s := newScenario(t)
	foreign := s.putForeign("172.16.5.0/24", "i-2vcxxt")
	a := s.start(s.options())
	b := s.start(s.options())
	leader := s.waitLeader(a, b)
	follower := a
	if leader == a {
		follower = b
	}
	if err := follower.Ready(s.ctx); err == nil && follower.IsLeader(s.ctx) {
		t.Fatalf("both replicas claim leadership")
	}

	// The next batch create is held 3s in the cloud: long enough to kill
	// the leader while it waits for the answer.
	if err := env.Sim.InjectFault(s.ctx, alisim.Fault{Action: "CreateRouteEntries", Latency: 3 * time.Second, Count: 1}); err != nil {
		t.Fatalf("injecting latency: %v", err)
	}
	w := s.addNodes(30, 10)
	w[foreign.Destination.String()] = foreign.NextHopID
	if err := framework.Poll(s.ctx, 50*time.Millisecond, waitTimeout, func(ctx context.Context) (bool, error) {
		fs, err := env.Sim.Faults(ctx)
		return err == nil && len(fs) == 0, err
	}); err != nil {
		t.Fatalf("the leader never sent its batch: %v", err)
	}
	if err := leader.Kill(); err != nil {
		t.Fatalf("killing the leader: %v", err)
	}

	if got := s.waitLeader(follower); got != follower {
		t.Fatalf("the surviving replica did not take over")
	}
	es := s.waitTable(w)
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.Destination.String()] {
			t.Errorf("duplicate entry for %s", e.Destination)
		}
		seen[e.Destination.String()] = true
	}
	got := s.entry(foreign.Destination.String())
	if got.ID != foreign.ID || got.Description != foreign.Description {
		t.Errorf("the foreign entry was touched during fail-over: %+v", got)
	}
	s.waitMetric(follower, "leader=1 and missing=0", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_leader", nil) == 1 &&
			m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "missing")) == 0
	})
}

// TestCollectsRoutesOfNodesDeletedWhileDown: a node deleted while no
// replica ran leaves a route that the next replica collects after start.
func TestCollectsRoutesOfNodesDeletedWhileDown(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	first := s.start(s.options())
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	if err := first.Stop(framework.DefaultStopTimeout); err != nil {
		t.Fatalf("stopping the replica: %v", err)
	}
	if code := first.ExitCode(); code != 0 {
		t.Errorf("the replica exited with code %d on SIGTERM, want 0", code)
	}

	s.deleteNode(nodeS)
	s.start(s.options())
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr"})
}

// TestConvergesUnderFaults: 10% of calls fail, writes are throttled and the
// VPC is busy for a while; the publisher still converges and its retries and
// throttles show in the metrics.
func TestConvergesUnderFaults(t *testing.T) {
	s := newScenario(t)
	ctx := s.ctx
	for _, f := range []alisim.Fault{
		{Code: "ServiceUnavailable", HTTPStatus: 503, Rate: 0.1},
		{Action: "CreateRouteEntries", Code: "TaskConflict", Count: 3},
	} {
		if err := env.Sim.InjectFault(ctx, f); err != nil {
			t.Fatalf("injecting %+v: %v", f, err)
		}
	}
	if err := env.Sim.SetThrottle(ctx, "DescribeRouteEntryList", 2, 2); err != nil {
		t.Fatalf("throttling: %v", err)
	}
	if err := env.Sim.SetThrottle(ctx, "CreateRouteEntries", 1, 1); err != nil {
		t.Fatalf("throttling: %v", err)
	}
	if err := env.Sim.SetBusy(ctx, true); err != nil {
		t.Fatalf("making the VPC busy: %v", err)
	}
	w := s.addNodes(12, 20)
	p := s.start(s.options())
	s.waitMetric(p, "a busy answer", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_cloud_api_calls_total", map[string]string{"code": "TaskConflict"}) > 0
	})
	if err := env.Sim.SetBusy(ctx, false); err != nil {
		t.Fatalf("releasing the VPC: %v", err)
	}

	s.waitTable(w)
	s.waitPassDone(p)
	m := s.waitMetric(p, "retries", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_cloud_api_retries_total", nil) > 0
	})
	t.Logf("under faults: %v calls, %v retries, %v throttles, writes %v",
		m.Get("vpc_route_publisher_cloud_api_calls_total", nil), m.Get("vpc_route_publisher_cloud_api_retries_total", nil),
		m.Get("vpc_route_publisher_cloud_api_throttles_total", nil), m.Series("vpc_route_publisher_route_writes_total"))
	if s.counter("DescribeRouteEntryList", "Throttling.User")+s.counter("CreateRouteEntries", "Throttling.User") > 0 &&
		m.Get("vpc_route_publisher_cloud_api_throttles_total", nil) == 0 {
		t.Errorf("the simulator throttled calls but the throttles counter is 0")
	}
	if got := m.Get("vpc_route_publisher_route_writes_total", map[string]string{"operation": "create", "result": "success"}); got != float64(len(w)) {
		t.Errorf("route_writes_total{create,success} = %v, want one per node (%d)", got, len(w))
	}
	if exited, _ := p.Exited(); exited {
		t.Fatalf("the publisher exited under faults with code %d", p.ExitCode())
	}
}

// TestCredentials: bad credentials give a clear error, readiness false, no
// route write and no crash loop; fixing the key file recovers; a key revoked
// while running does the same and recovers when re-enabled.
func TestCredentials(t *testing.T) {
	s := newScenario(t)
	ctx := s.ctx
	credDir := t.TempDir()
	if err := framework.WriteCredentials(credDir, env.Sim.AccessKeyID, "not-the-secret"); err != nil {
		t.Fatalf("writing bad credentials: %v", err)
	}
	s.createNode(node(nodeR, nodeR, "10.244.0.0/24"))
	o := s.options()
	o.CredentialsDir = credDir
	o.ResyncPeriod = 2 * time.Second
	p := s.start(o)

	if err := framework.Poll(ctx, pollEvery, waitTimeout, func(context.Context) (bool, error) {
		return strings.Contains(p.LogTail(200), "SignatureDoesNotMatch"), nil
	}); err != nil {
		t.Fatalf("the publisher never reported the cloud's SignatureDoesNotMatch: %v\n%s", err, p.LogTail(20))
	}
	// For a few resyncs: still alive, never ready, nothing written.
	s.holds(3*o.ResyncPeriod, func(ctx context.Context) error {
		if err := p.Ready(ctx); err == nil {
			return fmt.Errorf("ready with a wrong access key secret")
		}
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("the publisher exited with code %d on bad credentials; it must keep running and retry:\n%s", p.ExitCode(), p.LogTail(20))
		}
		return nil
	})
	if n := s.writeCalls(); n != 0 {
		t.Errorf("%d route writes reached the cloud with bad credentials", n)
	}
	if strings.Contains(p.LogTail(1000), "not-the-secret") {
		t.Errorf("the log contains the access key secret")
	}

	if err := env.Sim.WriteValidCredentials(credDir); err != nil {
		t.Fatalf("fixing the key file: %v", err)
	}
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr"})
	waitReady(s, p)
	s.waitPassDone(p)

	if err := env.Sim.SetAccessKeyDisabled(ctx, true); err != nil {
		t.Fatalf("revoking the key: %v", err)
	}
	s.createNode(node(nodeS, nodeS, "10.244.1.0/24"))
	if err := framework.Poll(ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		return p.Ready(ctx) != nil, nil
	}); err != nil {
		t.Errorf("still ready after the key was revoked: %v", err)
	}
	if err := env.Sim.SetAccessKeyDisabled(ctx, false); err != nil {
		t.Fatalf("re-enabling the key: %v", err)
	}
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	waitReady(s, p)
}

func waitReady(s *scenario, p *framework.Publisher) {
	s.t.Helper()
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		return p.Ready(ctx) == nil, p.Ready(ctx)
	}); err != nil {
		s.t.Fatalf("%s never became ready: %v", p.Name, err)
	}
}

// TestSafetyValve: deleting most nodes at once trips the valve; nothing is
// deleted and the trip is visible.
func TestSafetyValve(t *testing.T) {
	s := newScenario(t)
	w := s.addNodes(5, 30)
	o := s.options()
	// One pass must see every deletion: coalesce them.
	o.SyncCoalesce = 3 * time.Second
	p := s.start(o)
	s.waitTable(w)
	s.probed(p)

	list, err := env.Kube.CoreV1().Nodes().List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing nodes: %v", err)
	}
	for _, n := range list.Items[:4] {
		s.deleteNode(n.Name)
	}
	s.waitMetric(p, "safety valve tripped", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_safety_valve_tripped", nil) == 1 &&
			m.Get("vpc_route_publisher_safety_valve_trips_total", nil) >= 1
	})
	// The event goes on each withheld node, gone or not: that is where an
	// operator looks.
	s.waitEvent(list.Items[0].Name, "SafetyValveTripped")
	es, err := env.Sim.CustomRoutes(s.ctx, "")
	if err != nil {
		t.Fatalf("listing routes: %v", err)
	}
	if len(es) != len(w) {
		t.Errorf("the safety valve tripped but the table has %d entries, want all %d: %s", len(es), len(w), routeTable(es))
	}
	if n := s.counter("DeleteRouteEntries") + s.counter("DeleteRouteEntry"); n != 0 {
		t.Errorf("%d delete calls reached the cloud while the valve was tripped", n)
	}
}

// TestQuota: more nodes than the table allows; the ones that fit are
// published, each one that does not gets a clear error, and the quota shows
// in the metrics.
func TestQuota(t *testing.T) {
	s := newScenario(t)
	const quota = 3
	if err := env.Sim.SetQuota(s.ctx, "", quota); err != nil {
		t.Fatalf("setting the quota: %v", err)
	}
	w := s.addNodes(5, 40)
	o := s.options()
	o.ExtraArgs = []string{fmt.Sprintf("--route-table-quota=%d", quota)}
	p := s.start(o)

	var es []alisim.RouteEntry
	if err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		var err error
		es, err = env.Sim.CustomRoutes(ctx, "")
		if err != nil || len(es) != quota {
			return false, err
		}
		for _, e := range es {
			if e.Status != alisim.StatusAvailable || w[e.Destination.String()] != e.NextHopID {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("want %d of %d routes published: %v; table %s", quota, len(w), err, routeTable(es))
	}
	published := map[string]bool{}
	for _, e := range es {
		published[e.NextHopID] = true
	}
	for _, inst := range w {
		name := env.Sim.Region + "." + inst
		if published[inst] {
			continue
		}
		msg := s.waitEvent(name, "RouteFailed")
		if !strings.Contains(strings.ToLower(msg), "quota") {
			t.Errorf("the RouteFailed event of %s does not mention the quota: %q", name, msg)
		}
		if c := s.nodeCondition(name); c != nil && c.Reason == "RouteCreated" {
			t.Errorf("node %s without a route got NetworkUnavailable cleared", name)
		}
	}
	s.waitMetric(p, "quota used 3 of 3", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_table_quota_used", map[string]string{"table": env.Sim.TableID}) == quota &&
			m.Get("vpc_route_publisher_route_table_quota_limit", map[string]string{"table": env.Sim.TableID}) == quota
	})
}
