package alisim_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// batchCreate sends one CreateRouteEntries call of Instance entries.
func batchCreate(c *vpc.Client, entries ...vpc.CreateRouteEntriesRouteEntries) (*vpc.CreateRouteEntriesResponse, error) {
	for i := range entries {
		entries[i].RouteTableId, entries[i].NextHopType = tableID, "Instance"
	}
	req := vpc.CreateCreateRouteEntriesRequest()
	req.RouteEntries = &entries
	return c.CreateRouteEntries(req)
}

func failedCodes(resp *vpc.CreateRouteEntriesResponse) map[string]string {
	out := map[string]string{}
	for _, f := range resp.FailedRouteEntries {
		out[f.DstCidrBlock] = f.FailedCode
	}
	return out
}

// TestIPVersionEncodings: RouteEntries.N.IpVersion is accepted absent or
// in the encodings IPVersionEncoding allows (integer 4/6 of the
// CreateRouteEntries page, names IPv4/IPv6 of DescribeRouteEntryList);
// anything else is IllegalParam.IpVersion and writes nothing.
func TestIPVersionEncodings(t *testing.T) {
	accepted := map[string]map[string]bool{
		alisim.IPVersionAny:     {"": true, "6": true, "IPv6": true, "ipv6": true},
		alisim.IPVersionInteger: {"": true, "6": true},
		alisim.IPVersionName:    {"": true, "IPv6": true, "ipv6": true},
	}
	for enc, ok := range accepted {
		t.Run(enc, func(t *testing.T) {
			opts := instant
			opts.IPVersionEncoding = enc
			ts := start(t, opts)
			c := vpcClient(t, ts, testCred())
			for i, v := range []string{"", "6", "IPv6", "ipv6", "v6", "IPV6x", "60"} {
				dst := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x24, 0x08, 0x40, 0x05, 0x03, 0xa0, 0x20, byte(i)}), 64).String()
				resp, err := batchCreate(c, vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: dst, NextHop: "i-2vcxxr", IpVersion: v})
				if ok[v] {
					if err != nil || resp.SuccessCount != 1 {
						t.Errorf("IpVersion %q: %v, %+v; want accepted", v, err, resp)
					}
					continue
				}
				wantServerError(t, err, alisim.CodeIllegalIPVersion, http.StatusBadRequest)
				if _, found := customEntries(t, ts.Sim, tableID)[dst]; found {
					t.Errorf("IpVersion %q refused but %s written", v, dst)
				}
			}
			// A version that contradicts the destination fails that item.
			resp, err := batchCreate(c, vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.9.0/24", NextHop: "i-2vcxxr", IpVersion: map[bool]string{true: "IPv6", false: "6"}[enc == alisim.IPVersionName]})
			if err != nil || failedCodes(resp)["10.244.9.0/24"] != alisim.FailedCidrInvalid {
				t.Errorf("IPv6 version on an IPv4 destination: %v, %+v", err, resp)
			}
		})
	}
	if _, err := alisim.New(alisim.Options{IPVersionEncoding: "binary"}); err == nil {
		t.Error("an unknown encoding was accepted")
	}
}

// TestEntriesPendingAfterTheBusyWindow: with EntryPending longer than the
// busy window, the VPC takes writes again while entries are Pending, and
// the writes answer as the CreateRouteEntry, DeleteRouteEntry and CCM
// sources say.
func TestEntriesPendingAfterTheBusyWindow(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, TimestampWindow: time.Hour, WriteBase: time.Second, WritePerEntry: -1, EntryPending: 5 * time.Second})
	stable, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.7.0/24"), NextHopID: "i-2vcxxs"})
	if err != nil {
		t.Fatal(err)
	}
	c := vpcClient(t, ts, testCred())
	if _, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(1500 * time.Millisecond) // the VPC is free, the entry still Pending
	if e := customEntries(t, ts.Sim, tableID)["10.244.1.0/24"]; e.Status != alisim.StatusPending {
		t.Fatalf("entry is %s after the busy window, want Pending", e.Status)
	}
	_, err = createEntry(t, c, "10.244.2.0/24", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeIncorrectRouteEntryStatus, http.StatusBadRequest)
	del := vpc.CreateDeleteRouteEntryRequest()
	del.RouteEntryId = stable.ID
	_, err = c.DeleteRouteEntry(del)
	wantServerError(t, err, alisim.CodeIncorrcetRouteEntryStatus, http.StatusBadRequest)

	resp, err := batchCreate(c,
		vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.1.0/24", NextHop: "i-2vcxxr"},
		vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.7.0/24", NextHop: "i-2vcxxs"},
		vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.3.0/24", NextHop: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	codes := failedCodes(resp)
	if codes["10.244.1.0/24"] != alisim.FailedEntryStatus || codes["10.244.7.0/24"] != alisim.FailedCidrDuplicate || resp.SuccessCount != 1 {
		t.Fatalf("batch onto a Pending and an Available entry: %+v, want STATUS_ERROR, DUPLICATE and one success", resp)
	}
	clock.Advance(6 * time.Second)
	for dst, e := range customEntries(t, ts.Sim, tableID) {
		if e.Status != alisim.StatusAvailable {
			t.Errorf("%s is %s after EntryPending, want Available", dst, e.Status)
		}
	}
}

// TestIPv6NextHopNeedsAnIPv6Address: instances carry IPv6 addresses
// (DescribeInstances shows them on the primary interface); an IPv6 route to
// an instance without one fails with OperationFailed.NotSupportIPV6.
func TestIPv6NextHopNeedsAnIPv6Address(t *testing.T) {
	ts := start(t, instant)
	w, err := ts.Sim.AddVSwitch(alisim.VSwitch{VPCID: vpcID, CIDR: netip.MustParsePrefix("192.168.8.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	v4only, err := ts.Sim.AddInstances(1, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	dual, err := ts.Sim.AddInstances(1, alisim.DefaultVSwitchID)
	if err != nil || len(dual[0].IPv6) != 1 || !netip.MustParsePrefix("2408:4005:3a0:1000::/64").Contains(dual[0].IPv6[0]) {
		t.Fatalf("instance of an IPv6 vSwitch: %+v, %v; want an IPv6 address in the vSwitch", dual, err)
	}
	e := ecsClient(t, ts, testCred())
	req := ecs.CreateDescribeInstancesRequest()
	req.InstanceIds = `["i-2vcxxr"]`
	resp, err := e.DescribeInstances(req)
	if err != nil {
		t.Fatal(err)
	}
	nis := resp.Instances.Instance[0].NetworkInterfaces.NetworkInterface
	if len(nis) == 0 || len(nis[0].Ipv6Sets.Ipv6Set) != 1 || nis[0].Ipv6Sets.Ipv6Set[0].Ipv6Address != "2408:4005:3a0:1000::10" {
		t.Fatalf("network interfaces of i-2vcxxr = %+v, want its IPv6 address", nis)
	}

	c := vpcClient(t, ts, testCred())
	_, err = createEntry(t, c, "2408:4005:3a0:2000::/64", v4only[0].ID)
	wantServerError(t, err, alisim.CodeNextHopNotSupportIPv6, http.StatusBadRequest)
	if _, err := createEntry(t, c, "2408:4005:3a0:2001::/64", dual[0].ID); err != nil {
		t.Fatalf("IPv6 route to an instance with IPv6: %v", err)
	}
	batch, err := batchCreate(c, vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "2408:4005:3a0:2002::/64", NextHop: v4only[0].ID})
	if err != nil || failedCodes(batch)["2408:4005:3a0:2002::/64"] != alisim.CodeNextHopNotSupportIPv6 {
		t.Fatalf("batch IPv6 route to an instance without IPv6: %v, %+v", err, batch)
	}
}

// TestIPv6GatewayRouteCountsAgainstQuota: a VPC with an IPv6 gateway has
// the custom ::/0 entry in its system table; it is listed as Custom and
// takes a place of the quota.
func TestIPv6GatewayRouteCountsAgainstQuota(t *testing.T) {
	st := alisim.DefaultState()
	st.VPCs[0].IPv6GatewayID = "ipv6gw-2vc0000000000000001"
	st.RouteTables[0].Quota = 2
	opts := instant
	opts.State = st
	ts := start(t, opts)
	c := vpcClient(t, ts, testCred())
	var gw *vpc.RouteEntry
	for _, e := range listAll(t, c, tableID, 100) {
		if e.DestinationCidrBlock == "::/0" {
			gw = &e
		}
	}
	if gw == nil || gw.Type != "Custom" || gw.NextHopType != alisim.NextHopIPv6Gateway || gw.InstanceId != "ipv6gw-2vc0000000000000001" {
		t.Fatalf("::/0 entry = %+v, want Custom via the IPv6 gateway", gw)
	}
	resp, err := batchCreate(c,
		vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.1.0/24", NextHop: "i-2vcxxr"},
		vpc.CreateRouteEntriesRouteEntries{DstCidrBlock: "10.244.2.0/24", NextHop: "i-2vcxxr"})
	if err != nil || resp.SuccessCount != 1 || failedCodes(resp)["10.244.2.0/24"] != alisim.FailedQuota {
		t.Fatalf("two entries into a table of quota 2 holding ::/0: %v, %+v; want one written, one over quota", err, resp)
	}
}

func TestLatencyProfiles(t *testing.T) {
	fast, err := alisim.Profile(alisim.ProfileFast)
	if err != nil || fast.Busy(50) != 100*time.Millisecond || fast.Settle(50) != fast.Busy(50) {
		t.Fatalf("fast = %+v, %v", fast, err)
	}
	real, err := alisim.Profile(alisim.ProfileRealistic)
	if err != nil || real.Busy(50) != 6*time.Second || real.Settle(50) != 10*time.Second {
		t.Fatalf("realistic = %+v, %v", real, err)
	}
	o := alisim.Options{WriteBase: 2 * time.Second}
	if err := o.ApplyProfile(alisim.ProfileRealistic); err != nil {
		t.Fatal(err)
	}
	if o.WriteBase != 2*time.Second || o.WritePerEntry != real.WritePerEntry || o.EntryPending != real.EntryPending {
		t.Fatalf("explicit knob lost or profile not applied: %+v", o)
	}
	if err := o.ApplyProfile("slow"); err == nil {
		t.Fatal("an unknown profile was accepted")
	}
}
