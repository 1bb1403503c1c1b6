package alisim_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func createEntry(t *testing.T, c *vpc.Client, dst, hop string) (string, error) {
	t.Helper()
	req := vpc.CreateCreateRouteEntryRequest()
	req.RouteTableId = tableID
	req.DestinationCidrBlock = dst
	req.NextHopType = "Instance"
	req.NextHopId = hop
	resp, err := c.CreateRouteEntry(req)
	if err != nil {
		return "", err
	}
	return resp.RouteEntryId, nil
}

func listAll(t *testing.T, c *vpc.Client, table string, maxResult int) []vpc.RouteEntry {
	t.Helper()
	var out []vpc.RouteEntry
	token := ""
	for {
		req := vpc.CreateDescribeRouteEntryListRequest()
		req.RouteTableId = table
		req.NextToken = token
		if maxResult > 0 {
			req.MaxResult = requests.NewInteger(maxResult)
		}
		resp, err := c.DescribeRouteEntryList(req)
		if err != nil {
			t.Fatalf("DescribeRouteEntryList: %v", err)
		}
		out = append(out, resp.RouteEntrys.RouteEntry...)
		if resp.NextToken == "" {
			return out
		}
		token = resp.NextToken
	}
}

func TestCreateRouteEntryPendingThenAvailable(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, WriteBase: time.Second, WritePerEntry: 10 * time.Millisecond, TimestampWindow: time.Hour})
	c := vpcClient(t, ts, testCred())
	id, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	if err != nil {
		t.Fatalf("CreateRouteEntry: %v", err)
	}
	status := func() string {
		for _, e := range listAll(t, c, tableID, 0) {
			if e.RouteEntryId == id {
				return e.Status
			}
		}
		return "absent"
	}
	if got := status(); got != alisim.StatusPending {
		t.Fatalf("status right after create = %s, want Pending", got)
	}
	if _, err := createEntry(t, c, "10.244.2.0/24", "i-2vcxxr"); err == nil {
		t.Fatal("second write while the VPC is busy succeeded")
	} else {
		wantServerError(t, err, alisim.CodeTaskConflict, http.StatusBadRequest)
	}
	clock.Advance(time.Second + 10*time.Millisecond)
	if got := status(); got != alisim.StatusAvailable {
		t.Fatalf("status after the write window = %s, want Available", got)
	}
	del := vpc.CreateDeleteRouteEntryRequest()
	del.RouteEntryId = id
	if _, err := c.DeleteRouteEntry(del); err != nil {
		t.Fatalf("DeleteRouteEntry: %v", err)
	}
	if got := status(); got != alisim.StatusDeleting {
		t.Fatalf("status right after delete = %s, want Deleting", got)
	}
	clock.Advance(2 * time.Second)
	if got := status(); got != "absent" {
		t.Fatalf("status after the delete window = %s, want absent", got)
	}
	var e []alisim.RouteEntry
	if e, err = ts.Sim.Routes(tableID); err != nil {
		t.Fatal(err)
	}
	for _, r := range e {
		if r.Type == alisim.EntryTypeCustom {
			t.Fatalf("custom entry left behind: %+v", r)
		}
	}
}

func TestSignatureRejected(t *testing.T) {
	ts := start(t, alisim.Options{})
	c := vpcClient(t, ts, credentialsWithSecret("wrong-secret"))
	_, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	se := serverError(t, err, alisim.CodeSignatureDoesNotMatch, http.StatusBadRequest)
	// The SDK recognises a wrong secret when the server's string to sign
	// equals its own: proof the canonicalization matches.
	if se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
		t.Fatalf("SDK did not recognise a wrong secret; recommend = %q", se.Recommend())
	}
	if n := ts.Sim.Counters()["CreateRouteEntry"][alisim.CodeSignatureDoesNotMatch]; n != 1 {
		t.Fatalf("counter of SignatureDoesNotMatch = %d, want 1", n)
	}
	if routes, _ := ts.Sim.Routes(tableID); len(routes) != 3 {
		t.Fatalf("a rejected call changed the table: %d entries", len(routes))
	}
}

func TestUnknownAccessKey(t *testing.T) {
	ts := start(t, alisim.Options{})
	c := vpcClient(t, ts, credentialsFor("LTAIunknown", "x"))
	_, err := c.DescribeRouteEntryList(func() *vpc.DescribeRouteEntryListRequest {
		r := vpc.CreateDescribeRouteEntryListRequest()
		r.RouteTableId = tableID
		return r
	}())
	wantServerError(t, err, alisim.CodeInvalidAccessKeyNotFound, http.StatusNotFound)
}

func TestDefaultStateSystemEntries(t *testing.T) {
	ts := start(t, alisim.Options{})
	entries := listAll(t, vpcClient(t, ts, testCred()), tableID, 0)
	got := map[string]string{}
	for _, e := range entries {
		if e.Type != alisim.EntryTypeSystem || e.Status != alisim.StatusAvailable {
			t.Errorf("default entry %s is %s/%s", e.DestinationCidrBlock, e.Type, e.Status)
		}
		got[e.DestinationCidrBlock] = e.NextHopType
	}
	want := map[string]string{"192.168.0.0/24": "local", "2408:4005:3a0:1000::/64": "local", "100.64.0.0/10": "service"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("system entries = %v, want %v", got, want)
	}
	_ = netip.Prefix{}
}
