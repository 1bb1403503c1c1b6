package main

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// TestMissingPermissionMakesUnreadyAndBlocksReleaseDeletions runs the
// publisher with --instance-release-grace=0, so that only the permission
// proof stands between an empty DescribeInstances answer and the deletion
// of the node's route.
func TestMissingPermissionMakesUnreadyAndBlocksReleaseDeletions(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/ram-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	full, err := alisim.ParsePolicy(raw)
	if err != nil {
		t.Fatal(err)
	}
	noECS, err := alisim.ParsePolicy([]byte(strings.Replace(string(raw), `"ecs:DescribeInstances"`, `"ecs:DescribeInstanceStatus"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	if err := c.sim.Sim.SetAccessKeyPolicy(testKeyID, full); err != nil {
		t.Fatal(err)
	}
	stop := c.start(c.env(), c.runArgs("--leader-elect=false", "--cidr-source=nodes",
		"--instance-release-grace=0s", "--permission-check-interval=100ms"))
	ctx := t.Context()
	health, metrics, err := c.ln.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "route published and ready", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusOK && strings.Join(c.availableRoutes(), ",") == "10.244.0.0/24->i-2vcxxr", body
	})

	if err := c.sim.Sim.SetAccessKeyPolicy(testKeyID, noECS); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unready, naming the action", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusServiceUnavailable &&
			strings.Contains(body, "[-]permissions failed: grant the RAM action ecs:DescribeInstances to the publisher's credentials") &&
			strings.Contains(body, "[+]cloud ok"), body
	})
	eventually(t, "the metric", func() (bool, string) {
		_, body := get("http://" + metrics + "/metrics")
		return strings.Contains(body, `vpc_route_publisher_permission_missing{action="ecs:DescribeInstances"} 1`), body
	})
	// ECS now answers every lookup with an empty list: several passes
	// later, the route is still there.
	before := c.sim.Sim.Counters()["DescribeInstances"]["Success"]
	eventually(t, "several passes with empty answers", func() (bool, string) {
		n := c.sim.Sim.Counters()["DescribeInstances"]["Success"]
		return n >= before+5, ""
	})
	if got := strings.Join(c.availableRoutes(), ","); got != "10.244.0.0/24->i-2vcxxr" {
		t.Fatalf("the route was deleted on empty answers: %s", got)
	}

	// Granted again: ready; and a really released instance loses its route
	// (the control: the same setup does delete on proof).
	if err := c.sim.Sim.SetAccessKeyPolicy(testKeyID, full); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready again", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		_, m := get("http://" + metrics + "/metrics")
		return code == http.StatusOK && strings.Contains(m, `vpc_route_publisher_permission_missing{action="ecs:DescribeInstances"} 0`), body
	})
	if err := c.sim.Sim.ReleaseInstance("i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the released instance's route deleted", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "", got
	})
	if code, stderr := stop(); code != exitOK {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
