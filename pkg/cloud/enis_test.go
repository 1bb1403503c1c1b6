package cloud

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func TestSourceDestChecksReadThePrimaryENI(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	added, err := ts.Sim.AddInstances(150, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Sim.AttachSecondaryENI("i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	c := newTestCloud(t, ts, nil, testTuning(nil, rec))
	ids := []string{"i-2vcxxr", "i-2vcxxs", "i-gone", "not-an-instance"}
	for _, in := range added {
		ids = append(ids, in.ID)
	}
	checks, err := c.ENIs().SourceDestChecks(c.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 152 {
		t.Fatalf("%d checks, want 152 (the released and malformed IDs left out)", len(checks))
	}
	primary, err := ts.Sim.NetworkInterfaces("i-2vcxxr")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range primary {
		if e.Type == alisim.ENITypePrimary && (checks["i-2vcxxr"].ENI != e.ID || checks["i-2vcxxr"].On) {
			t.Fatalf("i-2vcxxr = %+v, want its primary ENI %s with the check off", checks["i-2vcxxr"], e.ID)
		}
	}
	if !checks[added[0].ID].On {
		t.Fatalf("a new instance's check reads off: %+v", checks[added[0].ID])
	}
	// 152 instances: 2 DescribeInstances (100 + 52) and 2
	// DescribeNetworkInterfaces the first time; only the latter again.
	if n := len(rec.calls("DescribeInstances")); n != 2 {
		t.Fatalf("%d DescribeInstances calls, want 2", n)
	}
	if n := len(rec.calls("DescribeNetworkInterfaces")); n != 2 {
		t.Fatalf("%d DescribeNetworkInterfaces calls, want 2", n)
	}
	if _, err := c.ENIs().SourceDestChecks(c.ctx, ids); err != nil {
		t.Fatal(err)
	}
	// Only the instance that does not exist is asked about again.
	if qs := rec.calls("DescribeInstances"); len(qs) != 1 || qs[0].Get("InstanceIds") != `["i-gone"]` {
		t.Fatalf("the primary ENIs were looked up again: %v", qs)
	}
	if n := len(rec.calls("DescribeNetworkInterfaces")); n != 2 {
		t.Fatalf("%d DescribeNetworkInterfaces calls for a second read, want 2", n)
	}

	// A check turned back on out of band is read at once.
	if _, err := ts.Sim.SetInstanceSourceDestCheck("i-2vcxxs", true); err != nil {
		t.Fatal(err)
	}
	checks, err = c.ENIs().SourceDestChecks(c.ctx, []string{"i-2vcxxs"})
	if err != nil {
		t.Fatal(err)
	}
	if !checks["i-2vcxxs"].On {
		t.Fatal("a check turned on out of band reads off")
	}
	// A released instance drops out.
	if err := ts.Sim.ReleaseInstance("i-2vcxxs"); err != nil {
		t.Fatal(err)
	}
	checks, err = c.ENIs().SourceDestChecks(c.ctx, []string{"i-2vcxxs"})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 0 {
		t.Fatalf("released instance still has a check: %+v", checks)
	}
}

func TestDisableSourceDestCheckWaitsUntilItReadsOff(t *testing.T) {
	ts := startSim(t, alisim.Options{ENIModifyDelay: 200 * time.Millisecond})
	added, err := ts.Sim.AddInstances(3, "")
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	ids := []string{added[0].ID, added[1].ID, added[2].ID}
	checks, err := c.ENIs().SourceDestChecks(c.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	var on []route.ENICheck
	for _, id := range ids {
		if !checks[id].On {
			t.Fatalf("%s starts with the check off", id)
		}
		on = append(on, checks[id])
	}
	// One ENI disappears before it is modified.
	if err := ts.Sim.ReleaseInstance(added[2].ID); err != nil {
		t.Fatal(err)
	}
	results := c.ENIs().DisableSourceDestCheck(c.ctx, on)
	for _, id := range ids[:2] {
		if err := results[id]; err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		enis, err := ts.Sim.NetworkInterfaces(id)
		if err != nil {
			t.Fatal(err)
		}
		if enis[0].SourceDestCheck {
			t.Fatalf("%s: returned before the check read off", id)
		}
	}
	if err := results[added[2].ID]; !errors.Is(err, route.ErrNotFound) {
		t.Fatalf("released instance: %v, want not found", err)
	}
}

// newInstanceWithCheckOn starts a simulator with one new instance (its
// check on) and returns the cloud and that instance's check.
func newInstanceWithCheckOn(t *testing.T, opts alisim.Options, mutate func(*Options)) (*alisim.TestServer, *testCloud, route.ENICheck) {
	t.Helper()
	ts := startSim(t, opts)
	added, err := ts.Sim.AddInstances(1, "")
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, mutate, testTuning(nil, nil))
	checks, err := c.ENIs().SourceDestChecks(c.ctx, []string{added[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	ck := checks[added[0].ID]
	if !ck.On {
		t.Fatalf("new instance %s has the check off", added[0].ID)
	}
	return ts, c, ck
}

func TestDisableSourceDestCheckFailures(t *testing.T) {
	t.Run("conflict is retried", func(t *testing.T) {
		ts, c, ck := newInstanceWithCheckOn(t, alisim.Options{ENIModifyDelay: -1}, nil)
		ts.Sim.InjectFault(alisim.Fault{Action: "ModifyNetworkInterfaceAttribute", Code: alisim.CodeENIConflict, Count: 2})
		res := c.ENIs().DisableSourceDestCheck(c.ctx, []route.ENICheck{ck})
		if err := res[ck.Instance]; err != nil {
			t.Fatalf("InvalidOperation.Conflict was not retried: %v", err)
		}
		if got := c.counter(t, "retries", "ModifyNetworkInterfaceAttribute"); got != 2 {
			t.Fatalf("%v retries, want 2", got)
		}
	})
	t.Run("throttled is retried and counted", func(t *testing.T) {
		ts, c, ck := newInstanceWithCheckOn(t, alisim.Options{ENIModifyDelay: -1}, nil)
		ts.Sim.InjectFault(alisim.Fault{Action: "ModifyNetworkInterfaceAttribute", Code: alisim.CodeThrottlingUser, Count: 1})
		res := c.ENIs().DisableSourceDestCheck(c.ctx, []route.ENICheck{ck})
		if err := res[ck.Instance]; err != nil {
			t.Fatalf("throttling was not retried: %v", err)
		}
		if got := c.counter(t, "throttles", "ModifyNetworkInterfaceAttribute"); got != 1 {
			t.Fatalf("%v throttles counted, want 1", got)
		}
	})
	t.Run("forbidden is not retried", func(t *testing.T) {
		ts := startSim(t, alisim.Options{})
		added, err := ts.Sim.AddInstances(1, "")
		if err != nil {
			t.Fatal(err)
		}
		ts.Sim.AddAccessKey("LTAIreadonly000000001", "readonly-secret", "ecs:Describe*", "vpc:*")
		env := map[string]string{EnvAccessKeyID: "LTAIreadonly000000001", EnvAccessKeySecret: "readonly-secret"}
		c := newTestCloud(t, ts, nil, testTuning(env, nil))
		checks, err := c.ENIs().SourceDestChecks(c.ctx, []string{added[0].ID})
		if err != nil {
			t.Fatalf("reading with a read-only key: %v", err)
		}
		res := c.ENIs().DisableSourceDestCheck(c.ctx, []route.ENICheck{checks[added[0].ID]})
		if err := res[added[0].ID]; !errors.Is(err, route.ErrUnauthorized) {
			t.Fatalf("without ecs:ModifyNetworkInterfaceAttribute: %v, want unauthorized", err)
		}
		if got := c.counter(t, "calls", "ModifyNetworkInterfaceAttribute", alisim.CodeForbiddenRAM); got != 1 {
			t.Fatalf("%v Forbidden.RAM calls, want exactly 1 (no retry)", got)
		}
	})
	t.Run("still on at the wait timeout", func(t *testing.T) {
		_, c, ck := newInstanceWithCheckOn(t, alisim.Options{ENIModifyDelay: time.Hour}, func(o *Options) { o.RouteWaitTimeout = 300 * time.Millisecond })
		res := c.ENIs().DisableSourceDestCheck(c.ctx, []route.ENICheck{ck})
		err := res[ck.Instance]
		if !errors.Is(err, route.ErrNotAvailable) || !route.Retryable(err) {
			t.Fatalf("check still on at the timeout: %v, want a retryable not-available error", err)
		}
	})
	t.Run("reading fails", func(t *testing.T) {
		ts := startSim(t, alisim.Options{})
		c := newTestCloud(t, ts, nil, testTuning(nil, nil))
		ts.Sim.InjectFault(alisim.Fault{Action: "DescribeNetworkInterfaces", Code: alisim.CodeForbiddenRAM, HTTPStatus: http.StatusForbidden})
		_, err := c.ENIs().SourceDestChecks(c.ctx, []string{"i-2vcxxr"})
		if !errors.Is(err, route.ErrUnauthorized) {
			t.Fatalf("DescribeNetworkInterfaces forbidden: %v", err)
		}
		if want := fmt.Sprint(route.ErrorCode(err)); want != alisim.CodeForbiddenRAM {
			t.Fatalf("error code %q, want %s", want, alisim.CodeForbiddenRAM)
		}
	})
}
