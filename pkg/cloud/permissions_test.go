package cloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// readPolicy reads a policy of deploy/, replacing the scoped variant's
// placeholder with table.
func readPolicy(t *testing.T, name, table string) *alisim.Policy {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/" + name)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte("vtb-REPLACE-WITH-ROUTE-TABLE-ID"), []byte(table))
	p, err := alisim.ParsePolicy(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

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

// everyAction configures the publisher to need every action it can call.
func everyAction(o *Options) { o.AdoptUnmarked, o.SourceDestCheck = true, "disable" }

func (c *testCloud) missingGauge(action string) float64 {
	return testutil.ToFloat64(c.permissions.metrics.permissionMissing.WithLabelValues(action))
}

// TestShippedPolicyIsWhatTheProbesNeed pins deploy/ram-policy.json and
// its scoped variant to RAMActions, the probe list: every action the code
// calls is granted, nothing else, each once.
func TestShippedPolicyIsWhatTheProbesNeed(t *testing.T) {
	probed := RAMActions()
	if len(probed) != len(permissionProbes) {
		t.Errorf("RAMActions %v: %d actions for %d probes; an action has two probes", probed, len(probed), len(permissionProbes))
	}
	for _, name := range []string{"ram-policy.json", "ram-policy-scoped.json"} {
		var granted []string
		for _, st := range readPolicy(t, name, alisim.DefaultTableID).Statement {
			granted = append(granted, st.Action...)
		}
		slices.Sort(granted)
		if !slices.Equal(granted, probed) {
			t.Errorf("deploy/%s grants %v, the publisher calls %v", name, granted, probed)
		}
	}
}

// TestProbesProveTheShippedPolicies runs the probes against the shipped
// policy and its scoped variant: every action is proven, and the probes
// leave the route table as it was.
func TestProbesProveTheShippedPolicies(t *testing.T) {
	for _, name := range []string{"ram-policy.json", "ram-policy-scoped.json"} {
		t.Run(name, func(t *testing.T) {
			ts := startSim(t, alisim.Options{RAMPolicy: readPolicy(t, name, alisim.DefaultTableID)})
			before, _ := ts.Sim.Routes(alisim.DefaultTableID)
			c := newTestCloud(t, ts, everyAction, testTuning(nil, nil))
			c.Permissions().Probe(c.ctx)
			if err := c.Permissions().Check(); err != nil || !c.Permissions().Proven() {
				t.Fatalf("Check = %v, proven %v", err, c.Permissions().Proven())
			}
			if got := c.Permissions().Actions(); len(got) != len(permissionProbes) {
				t.Errorf("actions %v", got)
			}
			for _, a := range c.Permissions().Actions() {
				if c.missingGauge(a) != 0 {
					t.Errorf("permission_missing{action=%s} = 1", a)
				}
			}
			after, _ := ts.Sim.Routes(alisim.DefaultTableID)
			if len(after) != len(before) {
				t.Errorf("the probes changed the table: %d entries, were %d", len(after), len(before))
			}
		})
	}
}

// TestProbesNameEachMissingAction removes each action in turn, under each
// denial shape the real services use.
func TestProbesNameEachMissingAction(t *testing.T) {
	shapes := map[string]alisim.Options{
		"empty list and Forbidden.RAM": {},
		"forbidden and Forbbiden":      {ECSDescribeDenial: alisim.ECSDenialForbidden, VPCDenialCode: alisim.CodeForbbiden},
	}
	full := readPolicy(t, "ram-policy.json", "")
	for shape, opts := range shapes {
		for _, pr := range permissionProbes {
			t.Run(shape+"/"+pr.Action, func(t *testing.T) {
				opts := opts
				opts.RAMPolicy = full
				ts := startSim(t, opts)
				// vpc:DescribeVpcs and vpc:DescribeRouteTableList are needed to
				// connect: connect with the full policy, then remove the action.
				c := newTestCloud(t, ts, everyAction, testTuning(nil, nil))
				if err := ts.Sim.SetAccessKeyPolicy(testKeyID, policyWithout(t, full, pr.Action)); err != nil {
					t.Fatal(err)
				}
				c.Permissions().Probe(c.ctx)
				if got := c.Permissions().Missing(); !slices.Equal(got, []string{pr.Action}) {
					t.Fatalf("missing %v, want [%s]", got, pr.Action)
				}
				err := c.Permissions().Check()
				if err == nil || !strings.Contains(err.Error(), "grant the RAM action "+pr.Action) {
					t.Fatalf("Check = %v, want it to name %s", err, pr.Action)
				}
				if c.Permissions().Proven() || c.missingGauge(pr.Action) != 1 {
					t.Fatalf("proven %v, gauge %v", c.Permissions().Proven(), c.missingGauge(pr.Action))
				}
				// Granted again: the next probe clears it.
				if err := ts.Sim.SetAccessKeyPolicy(testKeyID, full); err != nil {
					t.Fatal(err)
				}
				c.Permissions().Probe(c.ctx)
				if err := c.Permissions().Check(); err != nil || c.missingGauge(pr.Action) != 0 {
					t.Fatalf("after granting: Check = %v, gauge %v", err, c.missingGauge(pr.Action))
				}
			})
		}
	}
}

// TestScopedPolicyMissesAnUnlistedTable: a table the scoped policy does not
// name is refused, and the probe of every write says so.
func TestScopedPolicyMissesAnUnlistedTable(t *testing.T) {
	ts := startSim(t, alisim.Options{RAMPolicy: readPolicy(t, "ram-policy-scoped.json", alisim.DefaultTableID)})
	if _, err := ts.Sim.AddTable(alisim.RouteTable{ID: "vtb-2vc0000000000000other", VPCID: alisim.DefaultVPCID, Type: alisim.TableTypeCustom}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	c.Permissions().Probe(c.ctx)
	if got := c.Permissions().Missing(); !slices.Equal(got, []string{"vpc:CreateRouteEntries", "vpc:DeleteRouteEntries"}) {
		t.Fatalf("missing %v", got)
	}
}

// TestRefusedCallMarksTheActionMissing: a regular call refused by RAM marks
// its action missing at once, without waiting for a probe.
func TestRefusedCallMarksTheActionMissing(t *testing.T) {
	full := readPolicy(t, "ram-policy.json", "")
	ts := startSim(t, alisim.Options{RAMPolicy: full})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	c.Permissions().Probe(c.ctx)
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, policyWithout(t, full, "vpc:CreateRouteEntries")); err != nil {
		t.Fatal(err)
	}
	res := c.Table().Create(c.ctx, []route.Route{{Table: alisim.DefaultTableID, Destination: netip.MustParsePrefix("10.1.0.0/24"), NextHop: "i-2vcxxr", Node: "n1"}})
	if len(res) != 1 || !errors.Is(res[0].Err, ErrPermissionDenied) || !errors.Is(res[0].Err, route.ErrUnauthorized) {
		t.Fatalf("create result %+v, want a permission refusal", res)
	}
	if got := DeniedAction(res[0].Err); got != "vpc:CreateRouteEntries" {
		t.Errorf("DeniedAction = %q", got)
	}
	if got := c.Permissions().Missing(); !slices.Equal(got, []string{"vpc:CreateRouteEntries"}) {
		t.Fatalf("missing %v after a refused create", got)
	}
}

// fakeNow is a settable clock for the release grace.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// TestInstanceReleaseNeedsProofAndGrace: an instance counts as released only
// when it has been missing from by-ID lookups for the grace period, with
// the permissions proven at every lookup; never on one empty answer.
func TestInstanceReleaseNeedsProofAndGrace(t *testing.T) {
	full := readPolicy(t, "ram-policy.json", "")
	noECS := policyWithout(t, full, "ecs:DescribeInstances")
	ts := startSim(t, alisim.Options{RAMPolicy: full})
	clock := &fakeNow{t: time.Now()}
	tu := testTuning(nil, nil)
	tu.now = clock.now
	c := newTestCloud(t, ts, func(o *Options) { o.InstanceReleaseGrace = 5 * time.Minute }, tu)
	in := c.Instances()
	status := func() map[string]string {
		t.Helper()
		st, err := in.Status(c.ctx, []string{"i-2vcxxr", "i-2vcxxs"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	released := func(st map[string]string) bool { _, ok := st["i-2vcxxr"]; return !ok }

	// Without ecs:DescribeInstances ECS answers an empty list: nothing is
	// released, however long it lasts.
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, noECS); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		st := status()
		if released(st) || st["i-2vcxxr"] != route.InstanceAbsent || st["i-2vcxxs"] != route.InstanceAbsent {
			t.Fatalf("without the permission: %v", st)
		}
		clock.add(10 * time.Minute)
	}
	if !slices.Equal(c.Permissions().Missing(), []string{"ecs:DescribeInstances"}) {
		t.Fatalf("the empty answer did not lead to the missing permission: %v", c.Permissions().Missing())
	}

	// Granted again, and the instance really released: absent, then
	// released once the grace has passed.
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, full); err != nil {
		t.Fatal(err)
	}
	c.Permissions().Probe(c.ctx)
	if err := ts.Sim.ReleaseInstance("i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	if st := status(); released(st) || st["i-2vcxxr"] != route.InstanceAbsent || st["i-2vcxxs"] != route.InstanceRunning {
		t.Fatalf("first miss: %v", st)
	}
	clock.add(4 * time.Minute)
	if st := status(); released(st) {
		t.Fatalf("released within the grace: %v", st)
	}
	// The permission lost within the grace resets it: absences seen
	// without proof count for nothing.
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, noECS); err != nil {
		t.Fatal(err)
	}
	clock.add(2 * time.Minute)
	if st := status(); released(st) {
		t.Fatalf("released while the permission is missing: %v", st)
	}
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, full); err != nil {
		t.Fatal(err)
	}
	c.Permissions().Probe(c.ctx)
	if st := status(); released(st) {
		t.Fatalf("released right after the permission came back: %v", st)
	}
	clock.add(5 * time.Minute)
	if st := status(); !released(st) || st["i-2vcxxs"] != route.InstanceRunning {
		t.Fatalf("not released after the grace with the permissions proven: %v", st)
	}
}

func TestPermissionRefusalsAreClassified(t *testing.T) {
	for _, code := range []string{"Forbidden.RAM", "Forbbiden", "NoPermission"} {
		if err := classifyCode(code, 403); !errors.Is(err, ErrPermissionDenied) || !errors.Is(err, route.ErrUnauthorized) {
			t.Errorf("%s: class %v", code, err)
		}
	}
	for _, code := range []string{"InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch"} {
		if err := classifyCode(code, 400); errors.Is(err, ErrPermissionDenied) || !errors.Is(err, route.ErrUnauthorized) {
			t.Errorf("%s: class %v, want a credential failure, not a permission", code, err)
		}
	}
	// Probe outcomes: only DryRunOperation proves a DryRun probe.
	for name, tc := range map[string]struct {
		err    error
		dryRun bool
		want   int
	}{
		"dry run passed":       {&APIError{Code: codeDryRunOperation, HTTPStatus: 400, class: route.ErrInvalid}, true, permGranted},
		"dry run answered 200": {nil, true, permUnknown},
		"refused":              {&APIError{Code: "Forbidden.RAM", HTTPStatus: 403, class: ErrPermissionDenied}, true, permMissing},
		"busy write":           {&APIError{Code: "TaskConflict", HTTPStatus: 400, class: route.ErrBusy}, false, permGranted},
		"not found":            {&APIError{Code: "InvalidRouteEntryId.NotFound", HTTPStatus: 404, class: route.ErrNotFound}, false, permGranted},
		"server error":         {&APIError{Code: "InternalError", HTTPStatus: 500, class: route.ErrBusy}, false, permUnknown},
		"throttled":            {&APIError{Code: "Throttling.User", HTTPStatus: 400, class: route.ErrThrottled}, false, permUnknown},
		"network":              {&APIError{Code: codeNetworkError, class: ErrNetwork}, false, permUnknown},
		"bad key":              {&APIError{Code: "InvalidAccessKeyId.NotFound", HTTPStatus: 404, class: route.ErrUnauthorized}, false, permUnknown},
		"no tables":            {errors.New("listing the route tables to probe: boom"), false, permUnknown},
	} {
		if got := probeOutcome(tc.err, tc.dryRun).state; got != tc.want {
			t.Errorf("%s: state %d, want %d", name, got, tc.want)
		}
	}
}
