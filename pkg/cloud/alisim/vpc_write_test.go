package alisim_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// instant is the write model without delays: entries are Available and the
// VPC free as soon as the write returns.
var instant = alisim.Options{WriteBase: -1, WritePerEntry: -1}

func customEntries(t *testing.T, sim *alisim.Simulator, table string) map[string]alisim.RouteEntry {
	t.Helper()
	routes, err := sim.Routes(table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]alisim.RouteEntry{}
	for _, r := range routes {
		if r.Type == alisim.EntryTypeCustom {
			out[r.Destination.String()] = r
		}
	}
	return out
}

// twoVPCState is the default state plus a second VPC with one instance.
func twoVPCState() *alisim.State {
	st := alisim.DefaultState()
	st.VPCs = append(st.VPCs, alisim.VPC{ID: "vpc-other", CIDR: netip.MustParsePrefix("172.16.0.0/12")})
	st.VSwitches = append(st.VSwitches, alisim.VSwitch{ID: "vsw-other", VPCID: "vpc-other", CIDR: netip.MustParsePrefix("172.16.0.0/24")})
	st.Instances = append(st.Instances, alisim.Instance{ID: "i-other", VSwitchID: "vsw-other", PrivateIP: netip.MustParseAddr("172.16.0.10")})
	return st
}

func TestCreateRouteEntryValidation(t *testing.T) {
	opts := instant
	opts.State = twoVPCState()
	ts := start(t, opts)
	c := vpcClient(t, ts, testCred())
	if _, err := createEntry(t, c, "10.244.0.0/24", "i-2vcxxr"); err != nil {
		t.Fatalf("seeding entry: %v", err)
	}
	for _, tc := range []struct {
		name, table, dst, hop, hopType string
		code                           string
		status                         int
	}{
		{"malformed CIDR", tableID, "10.244.1.0/33", "i-2vcxxr", "", alisim.CodeCidrMalformed, 400},
		{"host bits set", tableID, "10.244.1.1/24", "i-2vcxxr", "", alisim.CodeCidrMalformed, 400},
		{"not an address", tableID, "ten.0.0.0/8", "i-2vcxxr", "", alisim.CodeCidrMalformed, 400},
		{"cloud service range", tableID, "100.64.1.0/24", "i-2vcxxr", "", alisim.CodeCidrInvalid, 400},
		{"cloud service range itself", tableID, "100.64.0.0/10", "i-2vcxxr", "", alisim.CodeCidrInvalid, 400},
		{"same as a vSwitch", tableID, "192.168.0.0/24", "i-2vcxxr", "", alisim.CodeCidrInvalid, 400},
		{"inside a vSwitch", tableID, "192.168.0.128/25", "i-2vcxxr", "", alisim.CodeCidrInvalid, 400},
		{"IPv6 overlapping a vSwitch", tableID, "2408:4005:3a0:1000::/80", "i-2vcxxr", "", alisim.CodeCidrOverlapVSwitchV6, 400},
		{"duplicate destination", tableID, "10.244.0.0/24", "i-2vcxxs", "", alisim.CodeCidrDuplicate, 400},
		{"unknown instance", tableID, "10.244.2.0/24", "i-nonexistent", "", alisim.CodeInstanceNotFound, 404},
		{"instance of another VPC", tableID, "10.244.2.0/24", "i-other", "", alisim.CodeInstanceOtherVpc, 404},
		{"next hop type not modelled", tableID, "10.244.2.0/24", "havip-1", "HaVip", alisim.CodeInvalidNextHopType, 400},
		{"unknown table", "vtb-nonexistent", "10.244.2.0/24", "i-2vcxxr", "", alisim.CodeRouteTableNotFound, 404},
		{"missing destination", tableID, "", "i-2vcxxr", "", alisim.CodeMissingParameter, 400},
		{"missing next hop", tableID, "10.244.2.0/24", "", "", alisim.CodeMissingParameter, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := vpc.CreateCreateRouteEntryRequest()
			req.RouteTableId, req.DestinationCidrBlock, req.NextHopId, req.NextHopType = tc.table, tc.dst, tc.hop, tc.hopType
			_, err := c.CreateRouteEntry(req)
			wantServerError(t, err, tc.code, tc.status)
		})
	}
	if got := customEntries(t, ts.Sim, tableID); len(got) != 1 {
		t.Fatalf("rejected creates changed the table: %v", got)
	}
	t.Run("accepted destinations", func(t *testing.T) {
		for _, dst := range []string{
			"192.168.0.0/16",          // contains a vSwitch: allowed
			"10.245.0.7",              // a bare address is a /32
			"2408:4005:3a0:2000::/64", // IPv6 outside the vSwitches
			"100.0.0.0/8",             // contains, but is not inside, 100.64.0.0/10
			"2001:db8::1",             // a bare IPv6 address is a /128
		} {
			if _, err := createEntry(t, c, dst, "i-2vcxxr"); err != nil {
				t.Errorf("create %s: %v", dst, err)
			}
		}
		got := customEntries(t, ts.Sim, tableID)
		for _, dst := range []string{"192.168.0.0/16", "10.245.0.7/32", "2408:4005:3a0:2000::/64", "100.0.0.0/8", "2001:db8::1/128"} {
			if _, ok := got[dst]; !ok {
				t.Errorf("entry %s missing; have %v", dst, got)
			}
		}
	})
	t.Run("name and description limits", func(t *testing.T) {
		req := vpc.CreateCreateRouteEntryRequest()
		req.RouteTableId, req.DestinationCidrBlock, req.NextHopId = tableID, "10.246.0.0/24", "i-2vcxxr"
		req.RouteEntryName = string(make([]byte, 129))
		_, err := c.CreateRouteEntry(req)
		wantServerError(t, err, alisim.CodeEntryNameMalformed, http.StatusBadRequest)
		req.RouteEntryName, req.Description = "ok", "https://not-allowed"
		_, err = c.CreateRouteEntry(req)
		wantServerError(t, err, alisim.CodeDescriptionMalformed, http.StatusBadRequest)
	})
}

func TestIPv6NotEnabled(t *testing.T) {
	st := alisim.DefaultState()
	st.VPCs[0].IPv6CIDR = netip.Prefix{}
	st.VSwitches[0].IPv6CIDR = netip.Prefix{}
	opts := instant
	opts.State = st
	ts := start(t, opts)
	_, err := createEntry(t, vpcClient(t, ts, testCred()), "2408:4005:3a0:2000::/64", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeVpcIPv6NotEnabled, http.StatusBadRequest)
}

func TestWritesSerializedPerVPCOnly(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, WriteBase: time.Minute, TimestampWindow: time.Hour, State: twoVPCState()})
	c := vpcClient(t, ts, testCred())
	if _, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	if !ts.Sim.Busy(vpcID) || ts.Sim.Busy("vpc-other") {
		t.Fatalf("busy: default VPC %v, other VPC %v; want true, false", ts.Sim.Busy(vpcID), ts.Sim.Busy("vpc-other"))
	}
	var otherTable string
	for _, tb := range ts.Sim.State().RouteTables {
		if tb.VPCID == "vpc-other" {
			otherTable = tb.ID
		}
	}
	req := vpc.CreateCreateRouteEntryRequest()
	req.RouteTableId, req.DestinationCidrBlock, req.NextHopId = otherTable, "10.244.1.0/24", "i-other"
	if _, err := c.CreateRouteEntry(req); err != nil {
		t.Fatalf("write to another VPC while the first is busy: %v", err)
	}
	// A next hop must live in the table's VPC, whichever VPC is busy.
	req = vpc.CreateCreateRouteEntryRequest()
	req.RouteTableId, req.DestinationCidrBlock, req.NextHopId = otherTable, "10.244.2.0/24", "i-2vcxxr"
	_, err := c.CreateRouteEntry(req)
	wantServerError(t, err, alisim.CodeInstanceOtherVpc, http.StatusNotFound)
}

func TestDefaultQuotaIs200(t *testing.T) {
	ts := start(t, instant)
	c := vpcClient(t, ts, testCred())
	for batch := range 4 {
		entries := make([]vpc.CreateRouteEntriesRouteEntries, 50)
		for i := range entries {
			entries[i] = batchEntry(fmt.Sprintf("10.%d.%d.0/24", 100+batch, i), "i-2vcxxr")
		}
		req := vpc.CreateCreateRouteEntriesRequest()
		req.RouteEntries = &entries
		if resp, err := c.CreateRouteEntries(req); err != nil || resp.SuccessCount != 50 {
			t.Fatalf("batch %d: %v %+v", batch, err, resp)
		}
	}
	_, err := createEntry(t, c, "10.200.0.0/24", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeQuotaExceeded, http.StatusBadRequest)
	if got := len(customEntries(t, ts.Sim, tableID)); got != alisim.DefaultQuota {
		t.Fatalf("custom entries = %d, want %d", got, alisim.DefaultQuota)
	}
}

func TestQuota(t *testing.T) {
	ts := start(t, instant)
	if err := ts.Sim.SetQuota(tableID, 2); err != nil {
		t.Fatal(err)
	}
	c := vpcClient(t, ts, testCred())
	for i := range 2 {
		if _, err := createEntry(t, c, fmt.Sprintf("10.244.%d.0/24", i), "i-2vcxxr"); err != nil {
			t.Fatalf("create %d within quota: %v", i, err)
		}
	}
	_, err := createEntry(t, c, "10.244.9.0/24", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeQuotaExceeded, http.StatusBadRequest)
	// System entries do not count against the quota.
	if got := len(customEntries(t, ts.Sim, tableID)); got != 2 {
		t.Fatalf("custom entries = %d, want 2", got)
	}
}

func batchEntry(dst, hop string) vpc.CreateRouteEntriesRouteEntries {
	return vpc.CreateRouteEntriesRouteEntries{RouteTableId: tableID, DstCidrBlock: dst, NextHop: hop, NextHopType: "Instance", Name: "n-" + dst, Description: "d-" + dst}
}

func TestCreateRouteEntriesMixedBatch(t *testing.T) {
	opts := instant
	opts.State = twoVPCState()
	ts := start(t, opts)
	c := vpcClient(t, ts, testCred())
	if _, err := createEntry(t, c, "10.244.0.0/24", "i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	// Quota: 1 existing + 40 more fit; the batch has 44 valid new ones.
	if err := ts.Sim.SetQuota(tableID, 41); err != nil {
		t.Fatal(err)
	}
	var entries []vpc.CreateRouteEntriesRouteEntries
	wantFail := map[string]string{}
	for i := 1; i <= 44; i++ {
		entries = append(entries, batchEntry(fmt.Sprintf("10.244.%d.0/24", i), "i-2vcxxs"))
	}
	for i := 41; i <= 44; i++ {
		wantFail[fmt.Sprintf("10.244.%d.0/24", i)] = alisim.FailedQuota
	}
	bad := []struct{ dst, hop, code string }{
		{"10.244.0.0/24", "i-2vcxxs", alisim.FailedCidrDuplicate}, // already in the table
		{"10.244.1.0/24", "i-2vcxxt", alisim.FailedCidrDuplicate}, // earlier in this batch
		{"10.244.300.0/24", "i-2vcxxs", alisim.FailedCidrInvalid}, // malformed
		{"100.64.8.0/24", "i-2vcxxs", alisim.FailedCidrInvalid},   // cloud service range
		{"10.250.0.0/24", "i-nonexistent", alisim.FailedNextHopNotExist},
		{"10.251.0.0/24", "i-other", alisim.FailedNextHopNotExist}, // another VPC
	}
	for _, b := range bad {
		entries = append(entries, batchEntry(b.dst, b.hop))
		if b.dst != "10.244.1.0/24" {
			wantFail[b.dst] = b.code
		}
	}
	if len(entries) != 50 {
		t.Fatalf("test batch has %d entries, want 50", len(entries))
	}
	req := vpc.CreateCreateRouteEntriesRequest()
	req.RouteEntries = &entries
	resp, err := c.CreateRouteEntries(req)
	if err != nil {
		t.Fatalf("CreateRouteEntries: %v", err)
	}
	gotFail := map[string]string{}
	dupOfBatch := 0
	for _, f := range resp.FailedRouteEntries {
		if f.DstCidrBlock == "10.244.1.0/24" {
			dupOfBatch++
			if f.FailedCode != alisim.FailedCidrDuplicate || f.NextHop != "i-2vcxxt" {
				t.Errorf("in-batch duplicate failed as %+v", f)
			}
			continue
		}
		gotFail[f.DstCidrBlock] = f.FailedCode
	}
	if fmt.Sprint(gotFail) != fmt.Sprint(wantFail) || dupOfBatch != 1 {
		t.Fatalf("failures = %v (+%d in-batch duplicate), want %v (+1)", gotFail, dupOfBatch, wantFail)
	}
	if resp.SuccessCount != 40 || resp.FailedCount != 10 || len(resp.RouteEntryIds) != 40 {
		t.Fatalf("SuccessCount %d FailedCount %d RouteEntryIds %d, want 40/10/40", resp.SuccessCount, resp.FailedCount, len(resp.RouteEntryIds))
	}
	got := customEntries(t, ts.Sim, tableID)
	if len(got) != 41 {
		t.Fatalf("table holds %d custom entries, want 41", len(got))
	}
	for i := 1; i <= 40; i++ {
		e := got[fmt.Sprintf("10.244.%d.0/24", i)]
		if e.NextHopID != "i-2vcxxs" || e.Name != "n-"+e.Destination.String() || e.Description != "d-"+e.Destination.String() {
			t.Fatalf("entry %d = %+v", i, e)
		}
	}
	ids := map[string]bool{}
	for _, id := range resp.RouteEntryIds {
		ids[id] = true
	}
	for _, e := range got {
		if e.Destination.String() != "10.244.0.0/24" && !ids[e.ID] {
			t.Fatalf("entry %s (%s) not in RouteEntryIds", e.ID, e.Destination)
		}
	}
}

func TestBatchLimits(t *testing.T) {
	ts := start(t, instant)
	c := vpcClient(t, ts, testCred())
	var entries []vpc.CreateRouteEntriesRouteEntries
	for i := range 51 {
		entries = append(entries, batchEntry(fmt.Sprintf("10.244.%d.0/24", i), "i-2vcxxr"))
	}
	req := vpc.CreateCreateRouteEntriesRequest()
	req.RouteEntries = &entries
	_, err := c.CreateRouteEntries(req)
	wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
	var dels []vpc.DeleteRouteEntriesRouteEntries
	for i := range 51 {
		dels = append(dels, vpc.DeleteRouteEntriesRouteEntries{RouteTableId: tableID, DstCidrBlock: fmt.Sprintf("10.244.%d.0/24", i), NextHop: "i-2vcxxr"})
	}
	dreq := vpc.CreateDeleteRouteEntriesRequest()
	dreq.RouteEntries = &dels
	_, err = c.DeleteRouteEntries(dreq)
	wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
	if got := customEntries(t, ts.Sim, tableID); len(got) != 0 {
		t.Fatalf("a rejected batch wrote %d entries", len(got))
	}
	empty := vpc.CreateCreateRouteEntriesRequest()
	_, err = c.CreateRouteEntries(empty)
	wantServerError(t, err, alisim.CodeMissingParameter, http.StatusBadRequest)
	noTable := []vpc.CreateRouteEntriesRouteEntries{{DstCidrBlock: "10.244.0.0/24", NextHop: "i-2vcxxr"}}
	req = vpc.CreateCreateRouteEntriesRequest()
	req.RouteEntries = &noTable
	_, err = c.CreateRouteEntries(req)
	wantServerError(t, err, alisim.CodeMissingRouteTableID, http.StatusBadRequest)
}

func TestDeleteRouteEntriesMixedBatch(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, WriteBase: time.Second, WritePerEntry: time.Millisecond})
	c := vpcClient(t, ts, testCred())
	keep, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.1.0/24"), NextHopID: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.2.0/24"), NextHopID: "i-2vcxxs"})
	if err != nil {
		t.Fatal(err)
	}
	pending, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.3.0/24"), NextHopID: "i-2vcxxs", Status: alisim.StatusPending})
	if err != nil {
		t.Fatal(err)
	}
	var system alisim.RouteEntry
	routes, _ := ts.Sim.Routes(tableID)
	for _, r := range routes {
		if r.Type == alisim.EntryTypeSystem {
			system = r
		}
	}
	dels := []vpc.DeleteRouteEntriesRouteEntries{
		{RouteTableId: tableID, RouteEntryId: keep.ID},
		{RouteTableId: tableID, DstCidrBlock: "10.244.2.0/24", NextHop: "i-2vcxxs"},
		{RouteTableId: tableID, DstCidrBlock: "10.244.9.0/24", NextHop: "i-2vcxxs"},
		{RouteTableId: tableID, RouteEntryId: pending.ID},
		{RouteTableId: tableID, RouteEntryId: system.ID},
		{RouteTableId: tableID, RouteEntryId: keep.ID},
	}
	req := vpc.CreateDeleteRouteEntriesRequest()
	req.RouteEntries = &dels
	resp, err := c.DeleteRouteEntries(req)
	if err != nil {
		t.Fatalf("DeleteRouteEntries: %v", err)
	}
	if resp.SuccessCount != 2 || resp.FailedCount != 4 {
		t.Fatalf("SuccessCount %d FailedCount %d, want 2/4: %+v", resp.SuccessCount, resp.FailedCount, resp.FailedRouteEntries)
	}
	codes := []string{}
	for _, f := range resp.FailedRouteEntries {
		codes = append(codes, f.FailedCode)
	}
	sort.Strings(codes)
	want := []string{alisim.FailedSystemEntry, alisim.FailedEntryStatus, alisim.FailedEntryStatus, alisim.FailedEntryNotExist}
	sort.Strings(want)
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("failure codes = %v, want %v", codes, want)
	}
	got := customEntries(t, ts.Sim, tableID)
	if got["10.244.1.0/24"].Status != alisim.StatusDeleting || got["10.244.2.0/24"].Status != alisim.StatusDeleting {
		t.Fatalf("deleted entries are not Deleting: %+v", got)
	}
	clock.Advance(time.Second + 2*time.Millisecond)
	got = customEntries(t, ts.Sim, tableID)
	if len(got) != 1 || got["10.244.3.0/24"].ID != pending.ID {
		t.Fatalf("after the delete window the table holds %+v, want only the pending entry", got)
	}
	_ = gone
}

func TestDeleteRouteEntrySingle(t *testing.T) {
	ts := start(t, instant)
	c := vpcClient(t, ts, testCred())
	e, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.1.0/24"), NextHopID: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	del := vpc.CreateDeleteRouteEntryRequest()
	del.RouteTableId, del.DestinationCidrBlock, del.NextHopId = tableID, "10.244.1.0/24", "i-2vcxxs"
	_, err = c.DeleteRouteEntry(del)
	// The code the CCM (DeleteRoute) and Terraform (alicloud_route_entry
	// delete) treat as "already gone".
	wantServerError(t, err, alisim.CodeDeleteEntryNotFound, http.StatusBadRequest)
	byID := vpc.CreateDeleteRouteEntryRequest()
	byID.RouteEntryId = "rte-2vc000000000999abcde"
	_, err = c.DeleteRouteEntry(byID)
	wantServerError(t, err, alisim.CodeRouteEntryNotFound, http.StatusBadRequest)
	byID.RouteEntryId, byID.DestinationCidrBlock = e.ID, "10.244.1.0/24"
	_, err = c.DeleteRouteEntry(byID)
	wantServerError(t, err, alisim.CodeDeleteParamExclusive, http.StatusBadRequest)
	del.NextHopId = "i-2vcxxr"
	if _, err := c.DeleteRouteEntry(del); err != nil {
		t.Fatalf("delete by table+destination+next hop: %v", err)
	}
	if _, ok := customEntries(t, ts.Sim, tableID)[e.Destination.String()]; ok {
		t.Fatal("entry still present")
	}
	routes, _ := ts.Sim.Routes(tableID)
	sys := vpc.CreateDeleteRouteEntryRequest()
	sys.RouteEntryId = routes[0].ID
	_, err = c.DeleteRouteEntry(sys)
	wantServerError(t, err, alisim.CodeOperationDenied, http.StatusBadRequest)
	missing := vpc.CreateDeleteRouteEntryRequest()
	_, err = c.DeleteRouteEntry(missing)
	wantServerError(t, err, alisim.CodeMissingParameter, http.StatusBadRequest)
}

func TestModifyRouteEntry(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, WriteBase: time.Second})
	c := vpcClient(t, ts, testCred())
	id, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	if err != nil {
		t.Fatal(err)
	}
	mod := vpc.CreateModifyRouteEntryRequest()
	mod.RouteEntryId, mod.RouteEntryName, mod.Description = id, "node-a", "managed-by=vpc-route-publisher;cluster=c1;node=node-a"
	_, err = c.ModifyRouteEntry(mod)
	wantServerError(t, err, alisim.CodeIncorrectRouteEntryStatus, http.StatusBadRequest)
	clock.Advance(2 * time.Second)
	if _, err := c.ModifyRouteEntry(mod); err != nil {
		t.Fatalf("ModifyRouteEntry: %v", err)
	}
	e := customEntries(t, ts.Sim, tableID)["10.244.1.0/24"]
	if e.Status != alisim.StatusModifying || e.Name != "node-a" || e.Description != mod.Description {
		t.Fatalf("after modify: %+v", e)
	}
	if _, err := createEntry(t, c, "10.244.2.0/24", "i-2vcxxr"); err == nil {
		t.Fatal("a create while a modify is in flight succeeded")
	} else {
		wantServerError(t, err, alisim.CodeTaskConflict, http.StatusBadRequest)
	}
	clock.Advance(2 * time.Second)
	if e := customEntries(t, ts.Sim, tableID)["10.244.1.0/24"]; e.Status != alisim.StatusAvailable {
		t.Fatalf("after the modify window: %s", e.Status)
	}
	unknown := vpc.CreateModifyRouteEntryRequest()
	unknown.RouteEntryId, unknown.RouteEntryName = "rte-nonexistent", "x"
	_, err = c.ModifyRouteEntry(unknown)
	wantServerError(t, err, alisim.CodeRouteEntryNotFound, http.StatusBadRequest)
}

func TestClientTokenIdempotency(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, WriteBase: time.Second})
	c := vpcClient(t, ts, testCred())
	req := vpc.CreateCreateRouteEntryRequest()
	req.RouteTableId, req.DestinationCidrBlock, req.NextHopId, req.ClientToken = tableID, "10.244.1.0/24", "i-2vcxxr", "token-1"
	first, err := c.CreateRouteEntry(req)
	if err != nil {
		t.Fatal(err)
	}
	// A retry with the same token succeeds with the same entry, even while
	// the VPC is still busy with the original write.
	again, err := c.CreateRouteEntry(req)
	if err != nil {
		t.Fatalf("idempotent retry: %v", err)
	}
	if again.RouteEntryId != first.RouteEntryId {
		t.Fatalf("retry returned %s, want %s", again.RouteEntryId, first.RouteEntryId)
	}
	req.DestinationCidrBlock = "10.244.2.0/24"
	_, err = c.CreateRouteEntry(req)
	wantServerError(t, err, alisim.CodeIdempotentMismatch, http.StatusBadRequest)
	if got := customEntries(t, ts.Sim, tableID); len(got) != 1 {
		t.Fatalf("table holds %d custom entries, want 1", len(got))
	}
}

// TestConcurrentWritersSerialized runs writers against one VPC: only one
// write may be in flight at a time, others see TaskConflict and retry; the
// successful writes' windows never overlap and the final state is exact.
func TestConcurrentWritersSerialized(t *testing.T) {
	const (
		writers   = 6
		perWriter = 5
		window    = 20 * time.Millisecond
	)
	ts := start(t, alisim.Options{WriteBase: window, WritePerEntry: -1})
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		failures  []error
	)
	for w := range writers {
		// One client per writer: the SDK client is not safe for concurrent
		// use (it writes its timeout fields on every call).
		c := vpcClient(t, ts, testCred())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; {
				entries := []vpc.CreateRouteEntriesRouteEntries{batchEntry(fmt.Sprintf("10.%d.%d.0/24", 100+w, i), "i-2vcxxr")}
				req := vpc.CreateCreateRouteEntriesRequest()
				req.RouteEntries = &entries
				resp, err := c.CreateRouteEntries(req)
				var se *sdkerrors.ServerError
				switch {
				case errors.As(err, &se) && se.ErrorCode() == alisim.CodeTaskConflict:
					mu.Lock()
					conflicts++
					mu.Unlock()
					time.Sleep(time.Millisecond) // back off before retrying
				case err != nil || resp.SuccessCount != 1:
					mu.Lock()
					failures = append(failures, fmt.Errorf("writer %d entry %d: %w %+v", w, i, err, resp))
					mu.Unlock()
					return
				default:
					i++
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("writes failed: %v", failures)
	}
	if conflicts == 0 {
		t.Fatal("no TaskConflict observed with concurrent writers")
	}
	got := customEntries(t, ts.Sim, tableID)
	if len(got) != writers*perWriter {
		t.Fatalf("table holds %d entries, want %d", len(got), writers*perWriter)
	}
	var starts []time.Time
	for w := range writers {
		for i := range perWriter {
			e, ok := got[fmt.Sprintf("10.%d.%d.0/24", 100+w, i)]
			if !ok {
				t.Fatalf("entry of writer %d #%d missing", w, i)
			}
			starts = append(starts, e.Created)
		}
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < window {
			t.Fatalf("writes %d and %d were in flight together: %v apart, window %v", i-1, i, gap, window)
		}
	}
	t.Logf("%d writes, %d TaskConflict answers", len(starts), conflicts)
}

func TestPaginationEachEntryOnce(t *testing.T) {
	ts := start(t, instant)
	if err := ts.Sim.SetQuota(tableID, 1000); err != nil {
		t.Fatal(err)
	}
	const n = 257
	for i := range n {
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 256), byte(i % 256)}), 32), NextHopID: "i-2vcxxr"}); err != nil {
			t.Fatal(err)
		}
	}
	c := vpcClient(t, ts, testCred())
	for _, maxResult := range []int{0, 1, 7, 100} {
		t.Run(fmt.Sprintf("MaxResult=%d", maxResult), func(t *testing.T) {
			entries := listAll(t, c, tableID, maxResult)
			seen := map[string]int{}
			for _, e := range entries {
				seen[e.RouteEntryId]++
			}
			if len(entries) != n+3 || len(seen) != n+3 {
				t.Fatalf("listed %d entries (%d distinct), want %d", len(entries), len(seen), n+3)
			}
		})
	}
	t.Run("page sizes", func(t *testing.T) {
		req := describeReq()
		resp, err := c.DescribeRouteEntryList(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.RouteEntrys.RouteEntry) != 10 || resp.NextToken == "" {
			t.Fatalf("default page: %d entries, NextToken %q; want 10 (the documented default) and a token", len(resp.RouteEntrys.RouteEntry), resp.NextToken)
		}
		req = describeReq()
		req.MaxResult = requests.NewInteger(0)
		_, err = c.DescribeRouteEntryList(req)
		wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
		req = describeReq()
		req.NextToken = "not-a-token"
		_, err = c.DescribeRouteEntryList(req)
		wantServerError(t, err, alisim.CodeIllegalNextToken, http.StatusBadRequest)
	})
	t.Run("deletions between pages", func(t *testing.T) {
		req := describeReq()
		req.MaxResult = requests.NewInteger(100)
		resp, err := c.DescribeRouteEntryList(req)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range resp.RouteEntrys.RouteEntry {
			seen[e.RouteEntryId]++
		}
		// Delete the next entry the token points at and one already listed.
		routes, _ := ts.Sim.Routes(tableID)
		if err := ts.Sim.DeleteRoute(routes[100].ID); err != nil {
			t.Fatal(err)
		}
		if err := ts.Sim.DeleteRoute(routes[5].ID); err != nil {
			t.Fatal(err)
		}
		for token := resp.NextToken; token != ""; {
			req := describeReq()
			req.MaxResult, req.NextToken = requests.NewInteger(100), token
			resp, err := c.DescribeRouteEntryList(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.RouteEntrys.RouteEntry {
				seen[e.RouteEntryId]++
			}
			token = resp.NextToken
		}
		for _, r := range routes {
			want := 1
			if r.ID == routes[100].ID {
				want = 0
			}
			if seen[r.ID] != want {
				t.Fatalf("entry %s (index) listed %d times, want %d", r.ID, seen[r.ID], want)
			}
		}
	})
}

func TestDescribeRouteEntryListFilters(t *testing.T) {
	ts := start(t, instant)
	c := vpcClient(t, ts, testCred())
	for _, r := range []struct{ dst, hop, name string }{
		{"10.244.1.0/24", "i-2vcxxr", "a"}, {"10.244.2.0/24", "i-2vcxxs", "b"}, {"2408:4005:3a0:2000::/64", "i-2vcxxr", "c"},
	} {
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix(r.dst), NextHopID: r.hop, Name: r.name}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(mut func(*vpc.DescribeRouteEntryListRequest)) []vpc.RouteEntry {
		req := describeReq()
		mut(req)
		resp, err := c.DescribeRouteEntryList(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.RouteEntrys.RouteEntry
	}
	for _, tc := range []struct {
		name string
		mut  func(*vpc.DescribeRouteEntryListRequest)
		want int
	}{
		{"all", func(*vpc.DescribeRouteEntryListRequest) {}, 6},
		{"custom", func(r *vpc.DescribeRouteEntryListRequest) { r.RouteEntryType = "Custom" }, 3},
		{"system", func(r *vpc.DescribeRouteEntryListRequest) { r.RouteEntryType = "System" }, 3},
		{"instance next hops", func(r *vpc.DescribeRouteEntryListRequest) { r.NextHopType = "Instance" }, 3},
		{"next hop i-2vcxxr", func(r *vpc.DescribeRouteEntryListRequest) { r.NextHopId = "i-2vcxxr" }, 2},
		{"IPv6", func(r *vpc.DescribeRouteEntryListRequest) { r.IpVersion = "IPv6" }, 2},
		{"destination", func(r *vpc.DescribeRouteEntryListRequest) { r.DestinationCidrBlock = "10.244.2.0/24" }, 1},
		{"name", func(r *vpc.DescribeRouteEntryListRequest) { r.RouteEntryName = "c" }, 1},
		{"destination list", func(r *vpc.DescribeRouteEntryListRequest) {
			r.DestCidrBlockList = &[]string{"10.244.1.0/24", "10.244.2.0/24", "10.9.9.0/24"}
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(tc.mut); len(got) != tc.want {
				t.Fatalf("got %d entries, want %d: %+v", len(got), tc.want, got)
			}
		})
	}
	e := count(func(r *vpc.DescribeRouteEntryListRequest) { r.DestinationCidrBlock = "10.244.2.0/24" })[0]
	if e.InstanceId != "i-2vcxxs" || e.NextHopType != "Instance" || e.Type != "Custom" || e.Status != "Available" || e.IpVersion != "IPv4" ||
		e.RouteTableId != tableID || e.RouteEntryName != "b" || len(e.NextHops.NextHop) != 1 || e.NextHops.NextHop[0].NextHopId != "i-2vcxxs" || e.GmtModified == "" {
		t.Fatalf("entry fields = %+v", e)
	}
	_, err := c.DescribeRouteEntryList(func() *vpc.DescribeRouteEntryListRequest {
		r := vpc.CreateDescribeRouteEntryListRequest()
		r.RouteTableId = "vtb-nonexistent"
		return r
	}())
	wantServerError(t, err, alisim.CodeListTableNotFound, http.StatusBadRequest)
	_, err = c.DescribeRouteEntryList(vpc.CreateDescribeRouteEntryListRequest())
	wantServerError(t, err, alisim.CodeMissingParameter, http.StatusBadRequest)
}
