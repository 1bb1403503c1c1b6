package alisim_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func putEntries(t *testing.T, ts *alisim.TestServer, n int) {
	t.Helper()
	if err := ts.Sim.SetQuota(tableID, n+10); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 256), byte(i % 256)}), 32), NextHopID: "i-2vcxxr"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxResultAboveHundredIsClamped drives the listing exactly as the
// Alibaba CCM does (pkg/provider/alibaba/vpc/vpc.go listRouteBatch:
// RouteTableId, RouteEntryType=Custom, NextHopType=Instance, MaxResult=500,
// recursing on NextToken): it must page through every entry, 100 at a
// time, instead of being refused.
func TestMaxResultAboveHundredIsClamped(t *testing.T) {
	ts := start(t, instant)
	const n = 250
	putEntries(t, ts, n)
	c := vpcClient(t, ts, testCred())
	var listed, pages int
	for token := ""; ; {
		req := vpc.CreateDescribeRouteEntryListRequest()
		req.RouteTableId = tableID
		req.RouteEntryType = "Custom"
		req.NextHopType = "Instance"
		req.MaxResult = requests.NewInteger(500)
		req.NextToken = token
		resp, err := c.DescribeRouteEntryList(req)
		if err != nil {
			t.Fatalf("DescribeRouteEntryList with the CCM's MaxResult=500: %v", err)
		}
		pages++
		if got := len(resp.RouteEntrys.RouteEntry); got > 100 {
			t.Fatalf("page of %d entries, want at most the page maximum 100", got)
		}
		listed += len(resp.RouteEntrys.RouteEntry)
		if token = resp.NextToken; token == "" {
			break
		}
	}
	if listed != n || pages != 3 {
		t.Fatalf("listed %d custom entries in %d pages, want %d in 3", listed, pages, n)
	}
}

func TestNextTokenExpires(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	opts := instant
	opts.Clock, opts.TimestampWindow, opts.NextTokenTTL = clock, time.Hour, time.Minute
	ts := start(t, opts)
	putEntries(t, ts, 30)
	c := vpcClient(t, ts, testCred())
	req := describeReq()
	resp, err := c.DescribeRouteEntryList(req)
	if err != nil || resp.NextToken == "" {
		t.Fatalf("first page: %v, token %q", err, resp.NextToken)
	}
	clock.Advance(59 * time.Second)
	req = describeReq()
	req.NextToken = resp.NextToken
	if _, err := c.DescribeRouteEntryList(req); err != nil {
		t.Fatalf("token within its lifetime refused: %v", err)
	}
	clock.Advance(2 * time.Second)
	req = describeReq()
	req.NextToken = resp.NextToken
	_, err = c.DescribeRouteEntryList(req)
	wantServerError(t, err, alisim.CodeNextTokenExpired, http.StatusBadRequest)

	req = describeReq()
	req.IpVersion = "7"
	_, err = c.DescribeRouteEntryList(req)
	wantServerError(t, err, alisim.CodeIllegalIPVersion, http.StatusBadRequest)
}

// TestOriginValues checks the Origin of listed entries against the values
// of the DescribeRouteEntryList reference page.
func TestOriginValues(t *testing.T) {
	ts := start(t, instant)
	putEntries(t, ts, 1)
	c := vpcClient(t, ts, testCred())
	for _, e := range listAll(t, c, tableID, 100) {
		want := "CustomCreate"
		if e.Type == "System" {
			want = "SystemCreate"
		}
		if e.Origin != want {
			t.Errorf("entry %s (%s) has Origin %q, want %q", e.DestinationCidrBlock, e.Type, e.Origin, want)
		}
	}
}
