package cloud

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func tableIDs(infos []route.TableInfo) []string {
	ids := make([]string, 0, len(infos))
	for _, t := range infos {
		ids = append(ids, t.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestDiscoverEveryTableOfTheVPC(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	custom, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID, Name: "custom"})
	if err != nil {
		t.Fatal(err)
	}
	// A table of another VPC must not be selected.
	if _, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	infos, err := c.Table().Tables(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 || !slices.Contains(tableIDs(infos), custom.ID) || !slices.Contains(tableIDs(infos), alisim.DefaultTableID) {
		t.Fatalf("discovered %v, want the system table, %s and the second custom table", tableIDs(infos), custom.ID)
	}
	for _, info := range infos {
		if info.VPC != alisim.DefaultVPCID || info.Quota != 200 || (info.Type != "System" && info.Type != "Custom") {
			t.Errorf("table info %+v", info)
		}
	}
}

func TestExplicitTables(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	custom, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, func(o *Options) { o.RouteTableIDs = []string{custom.ID} }, testTuning(nil, nil))
	infos, err := c.Table().Tables(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := tableIDs(infos); !slices.Equal(got, []string{custom.ID}) {
		t.Fatalf("tables %v, want only %s", got, custom.ID)
	}

	t.Run("unknown table is a startup error", func(t *testing.T) {
		o := simOptions(ts)
		o.RouteTableIDs = []string{"vtb-doesnotexist"}
		_, err := newCloud(c.ctx, o, testCluster, nil, testTuning(nil, nil))
		if !errors.Is(err, route.ErrNotFound) || !strings.Contains(err.Error(), "vtb-doesnotexist") {
			t.Fatalf("err = %v, want not found naming the table", err)
		}
	})
}

func TestTableOfAnotherVPCIsRejected(t *testing.T) {
	st := alisim.DefaultState()
	st.VPCs = append(st.VPCs, alisim.VPC{ID: "vpc-other", CIDR: mustPrefix("172.16.0.0/16"), VRouterID: "vrt-other"})
	st.RouteTables = append(st.RouteTables, alisim.RouteTable{ID: "vtb-other", VPCID: "vpc-other", Type: alisim.TableTypeSystem})
	ts := startSim(t, alisim.Options{State: st})
	o := simOptions(ts)
	o.RouteTableIDs = []string{"vtb-other"}
	_, err := newCloud(t.Context(), o, testCluster, nil, testTuning(nil, nil))
	if !errors.Is(err, route.ErrInvalid) || !strings.Contains(err.Error(), "vpc-other") {
		t.Fatalf("err = %v, want an invalid-configuration error naming the other VPC", err)
	}
}

func TestListPagesBeyond100Entries(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if err := ts.Sim.SetQuota(alisim.DefaultTableID, 1000); err != nil {
		t.Fatal(err)
	}
	const n = 250
	for i := range n {
		desc := ""
		if i%2 == 0 {
			desc = route.Marker{Cluster: testCluster, Node: fmt.Sprintf("node-%d", i)}.String()
		}
		_, err := ts.Sim.PutRoute(alisim.RouteEntry{
			TableID:     alisim.DefaultTableID,
			Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), 0}), 24),
			NextHopID:   "i-2vcxxr",
			Description: desc,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A non-instance next hop and an IPv6 destination are listed too.
	// Even with our marker, a non-instance entry must never read as ours.
	haVipMarker := route.Marker{Cluster: testCluster, Node: "node-havip"}.String()
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.200.0.0/16"), NextHopType: "HaVip", NextHopID: "havip-1", Description: haVipMarker}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("2408:4005:3a0:2000::/64"), NextHopID: "i-2vcxxs"}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	ts.Sim.ResetCounters()
	rs, err := c.Table().List(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != n+2 {
		t.Fatalf("listed %d entries, want %d", len(rs), n+2)
	}
	if calls := ts.Sim.Counters()["DescribeRouteEntryList"]["Success"]; calls != 3 {
		t.Errorf("DescribeRouteEntryList calls = %d, want 3 pages of at most 100", calls)
	}
	byDst := map[netip.Prefix]route.Route{}
	for _, r := range rs {
		if _, dup := byDst[r.Destination]; dup {
			t.Errorf("%s listed twice", r.Destination)
		}
		byDst[r.Destination] = r
	}
	if r := byDst[mustPrefix("10.0.4.0/24")]; r.Owner != testCluster || r.Node != "node-4" || r.NextHop != "i-2vcxxr" || r.EntryID == "" || r.Status != route.StatusAvailable {
		t.Errorf("marked entry parsed as %+v", r)
	}
	if r := byDst[mustPrefix("10.0.5.0/24")]; r.Owner != "" || r.Node != "" {
		t.Errorf("unmarked entry parsed as %+v", r)
	}
	if r := byDst[mustPrefix("10.200.0.0/16")]; r.NextHop != "havip-1" || r.NextHopType != "HaVip" || r.IsInstance() {
		t.Errorf("non-instance next hop parsed as %+v", r)
	}
	if r := byDst[mustPrefix("10.0.4.0/24")]; r.NextHopType != route.NextHopInstance {
		t.Errorf("instance entry has next hop type %q, want %q", r.NextHopType, route.NextHopInstance)
	}
	policy := route.Policy{ClusterID: testCluster, ClusterCIDRs: []netip.Prefix{mustPrefix("10.0.0.0/8")}}
	if r := byDst[mustPrefix("10.200.0.0/16")]; policy.Owns(r) {
		t.Errorf("marked HaVip entry %+v is treated as owned", r)
	}
	if r, ok := byDst[mustPrefix("2408:4005:3a0:2000::/64")]; !ok || r.NextHop != "i-2vcxxs" {
		t.Errorf("IPv6 entry parsed as %+v", r)
	}
}

func TestCreateSplitsIntoBatchesOf50(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	rec := newRecorder()
	c := newTestCloud(t, ts, nil, testTuning(nil, rec))
	ts.Sim.ResetCounters()
	want := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 120)
	results := c.Table().Create(c.ctx, want)
	resultErrs(t, results)
	if got := rec.batches("CreateRouteEntries"); !slices.Equal(got, []int{50, 50, 20}) {
		t.Errorf("CreateRouteEntries batch sizes %v, want [50 50 20]", got)
	}
	if n := ts.Sim.Counters()["CreateRouteEntries"]["Success"]; n != 3 {
		t.Errorf("successful CreateRouteEntries calls = %d, want 3", n)
	}
	entries := simRoutes(t, ts, alisim.DefaultTableID)
	if len(entries) != 120 {
		t.Fatalf("simulator has %d custom entries, want 120", len(entries))
	}
	for i, r := range results {
		e := entries[want[i].Destination]
		if e.Status != alisim.StatusAvailable || e.NextHopID != "i-2vcxxr" {
			t.Errorf("entry %s: %+v", want[i].Destination, e)
		}
		if e.Description != "managed-by=vpc-route-publisher;cluster=c1;node=cn-chengdu.i-2vcxxr" || e.Name != "cn-chengdu.i-2vcxxr" {
			t.Errorf("entry %s name %q description %q", want[i].Destination, e.Name, e.Description)
		}
		if r.Route.EntryID != e.ID || r.Route.Status != route.StatusAvailable {
			t.Errorf("result %d = %+v, want entry %s Available", i, r.Route, e.ID)
		}
	}
}

func TestCreateMixedPerEntryFailures(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if err := ts.Sim.SetQuota(alisim.DefaultTableID, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.0.1.0/24"), NextHopID: "i-2vcxxs"}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	rs := []route.Route{
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.0.0/24"), NextHop: "i-2vcxxr", Node: "a"},        // ok
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.1.0/24"), NextHop: "i-2vcxxr", Node: "b"},        // taken by i-2vcxxs
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.2.0/24"), NextHop: "i-gone", Node: "c"},          // no such instance
		{Table: alisim.DefaultTableID, Destination: mustPrefix("192.168.0.0/24"), NextHop: "i-2vcxxr", Node: "d"},     // the vSwitch CIDR
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.3.0/24"), NextHop: "i-2vcxxt", Node: "e"},        // ok, fills the quota
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.4.0/24"), NextHop: "i-2vcxxt", Node: "f"},        // over quota
		{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.5.0/24"), NextHop: "i-2vcxxt", Node: "bad;node"}, // unmarkable
	}
	results := c.Table().Create(c.ctx, rs)
	wantClass := []error{nil, route.ErrConflict, route.ErrNotFound, route.ErrInvalid, nil, route.ErrQuotaExceeded, route.ErrInvalid}
	for i, res := range results {
		if res.Route.Destination != rs[i].Destination {
			t.Errorf("result %d is for %s, want %s", i, res.Route.Destination, rs[i].Destination)
		}
		switch {
		case wantClass[i] == nil && res.Err != nil:
			t.Errorf("%s: unexpected error %v", rs[i].Destination, res.Err)
		case wantClass[i] != nil && !errors.Is(res.Err, wantClass[i]):
			t.Errorf("%s: error %v, want %v", rs[i].Destination, res.Err, wantClass[i])
		}
	}
	var apiErr *APIError
	if !errors.As(results[1].Err, &apiErr) || apiErr.Code != "VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE" || apiErr.RequestID == "" {
		t.Errorf("conflict error %v does not carry the per-entry code and the request ID", results[1].Err)
	}
	if !errors.As(results[5].Err, &apiErr) || apiErr.Code != "VPC_ROUTE_ENTRY_QUOTA_EXCEEDED" {
		t.Errorf("quota error %v does not carry the per-entry code", results[5].Err)
	}
	entries := simRoutes(t, ts, alisim.DefaultTableID)
	if e := entries[mustPrefix("10.0.1.0/24")]; e.NextHopID != "i-2vcxxs" {
		t.Errorf("the conflicting entry was changed: %+v", e)
	}
	if len(entries) != 3 {
		t.Errorf("table has %d custom entries, want 3", len(entries))
	}
}

func TestCreateRetriesBusyVPC(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	ts.Sim.InjectFault(alisim.Fault{Action: "CreateRouteEntries", Code: alisim.CodeTaskConflict, Count: 2})
	ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Code: "IncorrectStatus.RouteTableStatus", Count: 1})
	results := c.Table().Create(c.ctx, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 3))
	resultErrs(t, results)
	if got := c.counter(t, "calls", "CreateRouteEntries", "TaskConflict"); got != 2 {
		t.Errorf("TaskConflict answers = %v, want 2", got)
	}
	if got := c.counter(t, "retries", "CreateRouteEntries"); got != 2 {
		t.Errorf("CreateRouteEntries retries = %v, want 2", got)
	}
	if got := len(simRoutes(t, ts, alisim.DefaultTableID)); got != 3 {
		t.Errorf("table has %d entries, want 3", got)
	}
}

func TestCreateWaitsOutABusyVPC(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: 300 * time.Millisecond})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 2)
	// The first write keeps the VPC busy for 300ms; the VPC also reports
	// the second write's entry status as busy three times.
	resultErrs(t, c.Table().Create(c.ctx, rs[:1]))
	ts.Sim.InjectFault(alisim.Fault{Action: "CreateRouteEntries", Code: alisim.CodeIncorrectRouteEntryStatus, Count: 3})
	resultErrs(t, c.Table().Create(c.ctx, rs[1:]))
	if got := c.counter(t, "calls", "CreateRouteEntries", alisim.CodeIncorrectRouteEntryStatus); got != 3 {
		t.Errorf("IncorrectRouteEntryStatus answers = %v, want 3", got)
	}
	if got := len(simRoutes(t, ts, alisim.DefaultTableID)); got != 2 {
		t.Errorf("table has %d entries, want 2", got)
	}
}

func TestThrottlingIsRetriedAndSlowsTheClient(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, func(o *Options) { o.QPS = 50; o.Burst = 50 }, testTuning(nil, nil))
	ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Code: alisim.CodeThrottlingUser, Count: 3})
	if _, err := c.Table().List(c.ctx); err != nil {
		t.Fatalf("List after throttling: %v", err)
	}
	if got := c.counter(t, "throttles", "DescribeRouteEntryList"); got != 3 {
		t.Errorf("throttles = %v, want 3", got)
	}
	if got := c.counter(t, "calls", "DescribeRouteEntryList", "Throttling.User"); got != 3 {
		t.Errorf("Throttling.User calls = %v, want 3", got)
	}
	if lim := c.Table().inv.limiter.Limit(); lim >= 50 {
		t.Errorf("limiter at %v after throttling, want below the configured 50", lim)
	}
}

func TestThrottlingBeyondTheRetryBudgetIsTyped(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, func(o *Options) { o.CallTimeout = 100 * time.Millisecond; o.RouteWaitTimeout = 100 * time.Millisecond }, testTuning(nil, nil))
	ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Code: alisim.CodeThrottlingUser})
	_, err := c.Table().List(c.ctx)
	if !errors.Is(err, route.ErrThrottled) {
		t.Fatalf("err = %v, want ErrThrottled", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Action != "DescribeRouteEntryList" || apiErr.Code != "Throttling.User" || apiErr.RequestID == "" || apiErr.HTTPStatus == 0 {
		t.Errorf("APIError = %+v", apiErr)
	}
}

func TestCreateWaitsUntilAvailable(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: 400 * time.Millisecond})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	start := time.Now()
	results := c.Table().Create(c.ctx, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 2))
	resultErrs(t, results)
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("Create returned after %v, before the entries could be Available", elapsed)
	}
	for _, r := range results {
		if r.Route.Status != route.StatusAvailable {
			t.Errorf("result status %q", r.Route.Status)
		}
	}
	for dst, e := range simRoutes(t, ts, alisim.DefaultTableID) {
		if e.Status != alisim.StatusAvailable {
			t.Errorf("%s is %s", dst, e.Status)
		}
	}
}

func TestCreateWaitTimeoutIsNotAvailable(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: time.Hour})
	c := newTestCloud(t, ts, func(o *Options) { o.RouteWaitTimeout = 200 * time.Millisecond }, testTuning(nil, nil))
	results := c.Table().Create(c.ctx, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1))
	if err := results[0].Err; !errors.Is(err, route.ErrNotAvailable) || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("err = %v, want ErrNotAvailable naming the Pending status", err)
	}
}

// An entry removed out of band while the publisher waits for it to become
// Available ends the wait at once (the next pass re-creates it) instead of
// stalling the pass for the whole wait timeout.
func TestCreateWaitEndsWhenTheEntryVanishes(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: time.Hour})
	c := newTestCloud(t, ts, func(o *Options) { o.RouteWaitTimeout = time.Minute }, testTuning(nil, nil))
	rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1)
	done := make(chan []route.Result, 1)
	start := time.Now()
	go func() { done <- c.Table().Create(c.ctx, rs) }()
	var entry alisim.RouteEntry
	waitFor(t, "the Pending entry", func() bool {
		e, ok := simRoutes(t, ts, alisim.DefaultTableID)[rs[0].Destination]
		entry = e
		return ok
	})
	if err := ts.Sim.DeleteRoute(entry.ID); err != nil {
		t.Fatal(err)
	}
	results := <-done
	if err := results[0].Err; !errors.Is(err, route.ErrNotAvailable) || !strings.Contains(err.Error(), "no longer listed") {
		t.Fatalf("err = %v, want ErrNotAvailable saying the entry is no longer listed", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("Create took %v after the entry vanished; it waited for the timeout", elapsed)
	}
}

// Credentials rejected while waiting end the wait with the typed error.
func TestCreateWaitEndsWhenCredentialsAreRejected(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: time.Hour})
	c := newTestCloud(t, ts, func(o *Options) { o.RouteWaitTimeout = time.Minute }, testTuning(nil, nil))
	rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1)
	done := make(chan []route.Result, 1)
	start := time.Now()
	go func() { done <- c.Table().Create(c.ctx, rs) }()
	waitFor(t, "the Pending entry", func() bool {
		_, ok := simRoutes(t, ts, alisim.DefaultTableID)[rs[0].Destination]
		return ok
	})
	if err := ts.Sim.SetAccessKeyDisabled(testKeyID, true); err != nil {
		t.Fatal(err)
	}
	results := <-done
	if err := results[0].Err; !errors.Is(err, route.ErrUnauthorized) {
		t.Fatalf("err = %v, want ErrUnauthorized", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("Create took %v after the key was disabled; it waited for the timeout", elapsed)
	}
}

func TestDeleteWaitsUntilGoneAndAlreadyGoneIsSuccess(t *testing.T) {
	ts := startSim(t, alisim.Options{WriteBase: 200 * time.Millisecond})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 3)
	resultErrs(t, c.Table().Create(c.ctx, rs))
	// One of them disappears out of band before the delete.
	gone := simRoutes(t, ts, alisim.DefaultTableID)[rs[1].Destination]
	if err := ts.Sim.DeleteRoute(gone.ID); err != nil {
		t.Fatal(err)
	}
	listed, err := c.Table().List(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed = append(listed, rs[1]) // still believed present
	results := c.Table().Delete(c.ctx, listed)
	resultErrs(t, results)
	if left := simRoutes(t, ts, alisim.DefaultTableID); len(left) != 0 {
		t.Errorf("entries left after delete: %v", left)
	}
}

func TestDeleteLeavesOtherNextHop(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.9.0.0/24"), NextHopID: "i-2vcxxs"}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Delete(c.ctx, []route.Route{{Table: alisim.DefaultTableID, Destination: mustPrefix("10.9.0.0/24"), NextHop: "i-2vcxxr"}})
	if results[0].Err != nil {
		t.Errorf("deleting a route that is not there (the slot has another next hop): %v", results[0].Err)
	}
	if e := simRoutes(t, ts, alisim.DefaultTableID)[mustPrefix("10.9.0.0/24")]; e.NextHopID != "i-2vcxxs" {
		t.Errorf("the other next hop's entry was touched: %+v", e)
	}
}

func TestAdoptStampsTheMarker(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	e, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.7.0.0/24"), NextHopID: "i-2vcxxr", Name: "ccm"})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Adopt(c.ctx, []route.Route{{Table: alisim.DefaultTableID, Destination: e.Destination, NextHop: "i-2vcxxr", Node: "cn-chengdu.i-2vcxxr", EntryID: e.ID}})
	resultErrs(t, results)
	got := simRoutes(t, ts, alisim.DefaultTableID)[e.Destination]
	if m, ok := route.ParseMarker(got.Description); !ok || m.Cluster != testCluster || m.Node != "cn-chengdu.i-2vcxxr" || got.ID != e.ID {
		t.Errorf("adopted entry %+v", got)
	}
	if results[0].Route.Owner != testCluster || results[0].Route.Status != route.StatusAvailable {
		t.Errorf("result %+v", results[0].Route)
	}
}

func TestCreateIntoEveryTable(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	custom, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	c := newTestCloud(t, ts, nil, testTuning(nil, rec))
	var rs []route.Route
	rs = append(rs, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 2)...)
	rs = append(rs, podRoutes(custom.ID, "i-2vcxxr", 2)...)
	resultErrs(t, c.Table().Create(c.ctx, rs))
	for _, tb := range []string{alisim.DefaultTableID, custom.ID} {
		if n := len(simRoutes(t, ts, tb)); n != 2 {
			t.Errorf("table %s has %d entries, want 2", tb, n)
		}
	}
	listed, err := c.Table().List(c.ctx)
	if err != nil || len(listed) != 4 {
		t.Fatalf("List = %d entries, %v; want 4", len(listed), err)
	}
}

func TestCallTimeoutBoundsASlowCall(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, func(o *Options) { o.CallTimeout = 150 * time.Millisecond; o.RouteWaitTimeout = 150 * time.Millisecond }, testTuning(nil, nil))
	ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Latency: 2 * time.Second})
	start := time.Now()
	_, err := c.Table().List(c.ctx)
	if !errors.Is(err, ErrNetwork) {
		t.Fatalf("err = %v, want ErrNetwork", err)
	}
	if elapsed := time.Since(start); elapsed > 1500*time.Millisecond {
		t.Errorf("List took %v despite a 150ms call timeout", elapsed)
	}
	if got := c.counter(t, "calls", "DescribeRouteEntryList", "Timeout"); got < 1 {
		t.Errorf("Timeout calls = %v", got)
	}
}

func TestDeleteRetriesEntriesStillPending(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	e, err := ts.Sim.PutRoute(alisim.RouteEntry{
		TableID: alisim.DefaultTableID, Destination: mustPrefix("10.8.0.0/24"), NextHopID: "i-2vcxxr",
		Status: alisim.StatusPending, Until: time.Now().Add(300 * time.Millisecond),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Delete(c.ctx, []route.Route{{Table: alisim.DefaultTableID, Destination: e.Destination, NextHop: "i-2vcxxr", EntryID: e.ID}})
	resultErrs(t, results)
	if got := c.counter(t, "retries", "DeleteRouteEntries"); got < 1 {
		t.Errorf("DeleteRouteEntries retries = %v, want the Pending entry retried", got)
	}
	if left := simRoutes(t, ts, alisim.DefaultTableID); len(left) != 0 {
		t.Errorf("entries left: %v", left)
	}
}

// TestDiscoveryFindsEveryTableOfAFullVPC: a VPC holds at most 10 route
// tables (the simulator refuses an eleventh, as the VPC quota does); the
// publisher discovers all of them in one listing.
func TestDiscoveryFindsEveryTableOfAFullVPC(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	for range alisim.MaxRouteTablesPerVPC - 1 {
		if _, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID}); !errors.Is(err, alisim.ErrInvalid) {
		t.Fatalf("an eleventh route table: %v, want refused", err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	infos, err := c.Table().Tables(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != alisim.MaxRouteTablesPerVPC {
		t.Fatalf("discovered %d tables, want %d", len(infos), alisim.MaxRouteTablesPerVPC)
	}
	if n := ts.Sim.Counters()["DescribeRouteTableList"]["Success"]; n != 1 {
		t.Errorf("DescribeRouteTableList calls = %d, want 1 (one page holds a full VPC; the selection is cached)", n)
	}
}

func TestCreateOverAnEntryBeingDeletedIsBusyNotConflict(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{
		TableID: alisim.DefaultTableID, Destination: mustPrefix("10.0.0.0/24"), NextHopID: "i-2vcxxs",
		Status: alisim.StatusDeleting, Until: time.Now().Add(200 * time.Millisecond),
	}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Create(c.ctx, podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1))
	if err := results[0].Err; !errors.Is(err, route.ErrBusy) || errors.Is(err, route.ErrConflict) {
		t.Fatalf("err = %v, want ErrBusy (retry), not a conflict", err)
	}
}

// TestDeleteNeverHitsAReCreatedEntry: between the listing a delete was
// planned from and the delete, the entry was deleted and re-created (same
// destination, same next hop, new ID). The delete names the listed entry
// by ID, so it reports it gone and leaves the new one alone.
func TestDeleteNeverHitsAReCreatedEntry(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	old, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.0.0.0/24"), NextHopID: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Sim.DeleteRoute(old.ID); err != nil {
		t.Fatal(err)
	}
	recreated, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.0.0.0/24"), NextHopID: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	results := c.Table().Delete(c.ctx, []route.Route{{Table: alisim.DefaultTableID, Destination: mustPrefix("10.0.0.0/24"), NextHop: "i-2vcxxr", EntryID: old.ID}})
	resultErrs(t, results)
	left := simRoutes(t, ts, alisim.DefaultTableID)
	if e, ok := left[mustPrefix("10.0.0.0/24")]; !ok || e.ID != recreated.ID || e.Status != alisim.StatusAvailable {
		t.Errorf("the re-created entry %s was touched: %v", recreated.ID, left)
	}
}
