package cloud

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// dualStack is one node's IPv4 and IPv6 route to i-2vcxxr.
func dualStack() []route.Route {
	node := "cn-chengdu.i-2vcxxr"
	return []route.Route{
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.244.1.0/24"), NextHop: "i-2vcxxr", Node: node},
		{Table: alisim.DefaultTableID, Destination: mustPrefix("2408:4005:3a0:2001::/64"), NextHop: "i-2vcxxr", Node: node},
	}
}

// TestIPVersionUnderEachEncoding: whichever IpVersion encoding the VPC
// accepts (the reference pages disagree), the publisher creates dual-stack
// routes; IPv4 entries never carry IpVersion (as the CCM), IPv6 entries
// carry 6 and, where that is refused, IPv6.
func TestIPVersionUnderEachEncoding(t *testing.T) {
	for enc, want := range map[string]string{
		alisim.IPVersionAny:     "6",
		alisim.IPVersionInteger: "6",
		alisim.IPVersionName:    "IPv6",
	} {
		t.Run(enc, func(t *testing.T) {
			ts := startSim(t, alisim.Options{IPVersionEncoding: enc})
			rec := newRecorder()
			c := newTestCloud(t, ts, nil, testTuning(nil, rec))
			resultErrs(t, c.Table().Create(c.ctx, dualStack()))
			calls := rec.calls("CreateRouteEntries")
			if len(calls) != 1 {
				t.Fatalf("%d successful CreateRouteEntries calls, want 1", len(calls))
			}
			q := calls[0]
			for n := 1; q.Get(ipvKey(n, "DstCidrBlock")) != ""; n++ {
				dst, version := q.Get(ipvKey(n, "DstCidrBlock")), q.Get(ipvKey(n, "IpVersion"))
				switch {
				case strings.Contains(dst, ":") && version != want:
					t.Errorf("IPv6 entry %s sent with IpVersion %q, want %q", dst, version, want)
				case !strings.Contains(dst, ":") && q.Has(ipvKey(n, "IpVersion")):
					t.Errorf("IPv4 entry %s sent with IpVersion %q, want none", dst, version)
				}
			}
			if got := ts.Sim.Counters()["CreateRouteEntries"][alisim.CodeIllegalIPVersion]; (enc == alisim.IPVersionName) != (got == 1) {
				t.Errorf("IllegalParam.IpVersion answered %d times under %s", got, enc)
			}
		})
	}
}

func ipvKey(n int, field string) string {
	return fmt.Sprintf("RouteEntries.%d.%s", n, field)
}

// TestDuplicateIsOursOnlyWithOurMarker: the destination was taken, between
// the plan and the create, by an entry with the same next hop. Only our
// ownership marker on it makes the create a success.
func TestDuplicateIsOursOnlyWithOurMarker(t *testing.T) {
	for _, tc := range []struct {
		name, description string
		wantErr           error
	}{
		{"unmarked", "", route.ErrConflict},
		{"another cluster", route.Marker{Cluster: "other", Node: "cn-chengdu.i-2vcxxr"}.String(), route.ErrConflict},
		{"ours", route.Marker{Cluster: testCluster, Node: "cn-chengdu.i-2vcxxr"}.String(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startSim(t, alisim.Options{})
			rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1)
			if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: rs[0].Destination, NextHopID: "i-2vcxxr", Description: tc.description}); err != nil {
				t.Fatal(err)
			}
			c := newTestCloud(t, ts, nil, testTuning(nil, nil))
			err := c.Table().Create(c.ctx, rs)[0].Err
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("create over a %s duplicate: %v, want %v", tc.name, err, tc.wantErr)
			}
		})
	}
}

// TestCreateOntoAPendingEntry: the batch create meets an entry of the same
// destination that is still Pending after the VPC is free again
// (VPC_ROUTE_ENTRY_STATUS_ERROR, "created, in progress" to the CCM). Ours:
// the publisher waits for it and succeeds without writing a second one.
// Someone else's: a conflict.
func TestCreateOntoAPendingEntry(t *testing.T) {
	for _, tc := range []struct {
		name, description string
		wantErr           error
	}{
		{"ours", route.Marker{Cluster: testCluster, Node: "cn-chengdu.i-2vcxxr"}.String(), nil},
		{"unmarked", "", route.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startSim(t, alisim.Options{EntryPending: time.Second})
			rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1)
			pending, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: rs[0].Destination, NextHopID: "i-2vcxxr",
				Description: tc.description, Status: alisim.StatusPending, Until: time.Now().Add(300 * time.Millisecond)})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			c := newTestCloud(t, ts, nil, testTuning(nil, rec))
			res := c.Table().Create(c.ctx, rs)[0]
			if (tc.wantErr == nil) != (res.Err == nil) || (tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr)) {
				t.Fatalf("create onto a Pending %s entry: %v, want %v", tc.name, res.Err, tc.wantErr)
			}
			if tc.wantErr == nil && (res.Route.EntryID != pending.ID || res.Route.Status != route.StatusAvailable) {
				t.Fatalf("result %+v, want the Pending entry %s, Available", res.Route, pending.ID)
			}
			if n := len(rec.calls("CreateRouteEntries")); n != 1 {
				t.Fatalf("%d CreateRouteEntries calls, want 1 (the status error is not retried as busy)", n)
			}
			if left := simRoutes(t, ts, alisim.DefaultTableID); len(left) != 1 || left[rs[0].Destination].ID != pending.ID {
				t.Fatalf("entries %v, want only %s", left, pending.ID)
			}
		})
	}
}

// TestIPv6RouteToInstanceWithoutIPv6 fails with the documented code, as a
// problem of that route (invalid: retrying will not help), while the IPv4
// route of the same node is written.
func TestIPv6RouteToInstanceWithoutIPv6(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	w, err := ts.Sim.AddVSwitch(alisim.VSwitch{VPCID: alisim.DefaultVPCID, CIDR: mustPrefix("192.168.8.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	ins, err := ts.Sim.AddInstances(1, w.ID)
	if err != nil || len(ins[0].IPv6) != 0 {
		t.Fatalf("instance %+v, %v: want one without IPv6", ins, err)
	}
	rs := dualStack()
	for i := range rs {
		rs[i].NextHop, rs[i].Node = ins[0].ID, "cn-chengdu."+ins[0].ID
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Create(c.ctx, rs)
	if results[0].Err != nil {
		t.Fatalf("IPv4 route: %v", results[0].Err)
	}
	if err := results[1].Err; !errors.Is(err, route.ErrInvalid) || route.ErrorCode(err) != alisim.CodeNextHopNotSupportIPv6 {
		t.Fatalf("IPv6 route to an instance without IPv6: %v (code %q), want invalid with %s", err, route.ErrorCode(err), alisim.CodeNextHopNotSupportIPv6)
	}
}

// TestListCountsWhatTheCloudCounts: the quota the publisher reports counts
// every custom entry of the table, the ::/0 route the IPv6 gateway added
// and foreign entries included, and no system entry.
func TestListCountsWhatTheCloudCounts(t *testing.T) {
	st := alisim.DefaultState()
	st.VPCs[0].IPv6GatewayID = "ipv6gw-2vc0000000000000001"
	ts := startSim(t, alisim.Options{State: st})
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.9.0.0/16"), NextHopID: "i-2vcxxs"}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	resultErrs(t, c.Table().Create(c.ctx, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 2)))
	listed, err := c.Table().List(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	custom := len(simRoutes(t, ts, alisim.DefaultTableID))
	gateway := false
	for _, r := range listed {
		gateway = gateway || r.Destination == netip.MustParsePrefix("::/0")
	}
	if len(listed) != custom || custom != 4 || !gateway {
		t.Fatalf("listed %d entries (::/0 among them: %v), the cloud counts %d custom entries; want 4 on both sides", len(listed), gateway, custom)
	}
}
