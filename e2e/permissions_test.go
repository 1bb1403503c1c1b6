//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// policyWithout returns p without action.
func policyWithout(t *testing.T, p *alisim.Policy, action string) *alisim.Policy {
	t.Helper()
	raw, _ := json.Marshal(p)
	var out alisim.Policy
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	var sts []alisim.Statement
	for _, st := range out.Statement {
		st.Action = slices.DeleteFunc(st.Action, func(a string) bool { return a == action })
		if len(st.Action) > 0 {
			sts = append(sts, st)
		}
	}
	out.Statement = sts
	return &out
}

// readyz returns the status and body of p's /readyz.
func readyz(ctx context.Context, p *framework.Publisher) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HealthURL+"/readyz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), nil
}

// TestPermissionsDegradeSafely removes each action of the shipped RAM
// policy in turn from the publisher's key. Each time the replica turns
// unready naming the action in /readyz, the permission_missing gauge and
// the log say it, and nothing is deleted: not the route of a live node,
// and not the owned entry of a node whose instance ECS no longer lists
// (released for real, or hidden by the empty answer ECS gives a key
// without ecs:DescribeInstances). Granted everything again, the replica
// is ready and the released instance's entry goes after the grace: the
// control that the same setup does delete on proof.
func TestPermissionsDegradeSafely(t *testing.T) {
	s := newScenario(t)
	full := env.Sim.Policy()
	if full == nil {
		t.Fatal("the suite's simulator runs without the shipped RAM policy")
	}
	// Every action the publisher calls, which the shipped policy grants
	// exactly (TestShippedPolicyIsWhatTheProbesNeed in pkg/cloud).
	actions := cloud.RAMActions()
	var granted []string
	for _, st := range full.Statement {
		granted = append(granted, st.Action...)
	}
	slices.Sort(granted)
	if !slices.Equal(granted, actions) {
		t.Fatalf("the suite's RAM policy grants %v, the publisher calls %v", granted, actions)
	}
	// ecs:DescribeInstances first: it is missing from the start, before
	// any pass could delete the released instance's entry.
	actions = slices.DeleteFunc(actions, func(a string) bool { return a == "ecs:DescribeInstances" })
	actions = append([]string{"ecs:DescribeInstances"}, actions...)
	if err := env.Sim.SetPolicy(s.ctx, policyWithout(t, full, actions[0])); err != nil {
		t.Fatal(err)
	}

	live, gone := "cn-chengdu.i-2vcxxr", "cn-chengdu.i-2vcxxs"
	s.createNode(node(live, live, "10.244.0.0/24"))
	s.createNode(node(gone, gone, "10.244.1.0/24"))
	_, err := env.Sim.PutRoute(s.ctx, alisim.RouteEntry{
		Destination: netip.MustParsePrefix("10.244.1.0/24"), NextHopType: alisim.NextHopInstance, NextHopID: "i-2vcxxs",
		Name: gone, Description: route.Marker{Cluster: clusterID, Node: gone}.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Sim.ReleaseInstance(s.ctx, "i-2vcxxs"); err != nil {
		t.Fatal(err)
	}

	o := s.options()
	// Every action is needed (--adopt-unmarked uses ModifyRouteEntry, the
	// default --source-dest-check=disable both ENI actions); a short grace
	// leaves the permission proof as the only guard.
	o.ExtraArgs = []string{"--adopt-unmarked", "--instance-release-grace=2s", "--permission-check-interval=500ms"}
	p := s.start(o)
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})

	both := func(ctx context.Context) error {
		es, err := env.Sim.CustomRoutes(ctx, "")
		if err != nil {
			return err
		}
		var dsts []string
		for _, e := range es {
			dsts = append(dsts, e.Destination.String())
		}
		slices.Sort(dsts)
		if !slices.Equal(dsts, []string{"10.244.0.0/24", "10.244.1.0/24"}) {
			return fmt.Errorf("an entry was deleted: %s", routeTable(es))
		}
		return nil
	}
	for i, action := range actions {
		if i > 0 {
			if err := env.Sim.SetPolicy(s.ctx, policyWithout(t, full, action)); err != nil {
				t.Fatal(err)
			}
		}
		var body string
		err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
			code, b, err := readyz(ctx, p)
			body = b
			return err == nil && code == http.StatusServiceUnavailable &&
				strings.Contains(b, "[-]permissions failed: grant the RAM action "+action+" ") &&
				(i == 0 || !strings.Contains(b, "grant the RAM action "+actions[i-1]+" ")), nil
		})
		if err != nil {
			t.Fatalf("without %s: /readyz never named it: %v; last: %s", action, err, body)
		}
		s.waitMetric(p, "permission_missing for "+action, func(m framework.Metrics) bool {
			return m.Get("vpc_route_publisher_permission_missing", map[string]string{"action": action}) == 1
		})
		log, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(strings.Split(string(log), "\n"), func(l string) bool {
			return strings.Contains(l, `"RAM permission missing`) && strings.Contains(l, `action="`+action+`"`)
		}) {
			t.Errorf("without %s: no log line names it", action)
		}
		// Several probe intervals and passes: still nothing deleted.
		s.holds(3*time.Second, both)
	}

	if err := env.Sim.SetPolicy(s.ctx, full); err != nil {
		t.Fatal(err)
	}
	err = framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		code, _, err := readyz(ctx, p)
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("not ready with the full policy again: %v", err)
	}
	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr"})
}
