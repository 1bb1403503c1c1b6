package alisim_test

import (
	"net/netip"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// BenchmarkDescribeRouteEntryList measures one SDK page of 100 entries from
// a table of 1000, signature checking included.
func BenchmarkDescribeRouteEntryList(b *testing.B) {
	ts := alisim.StartForTest(b, alisim.Options{AccessKeyID: testKeyID, AccessKeySecret: testKeySecret})
	if err := ts.Sim.SetQuota(tableID, 2000); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), 0}), 24), NextHopID: "i-2vcxxr"}); err != nil {
			b.Fatal(err)
		}
	}
	c, err := vpc.NewClientWithOptions(region, sdkConfig(), testCred())
	if err != nil {
		b.Fatal(err)
	}
	c.Domain = ts.APIEndpoint
	req := func() *vpc.DescribeRouteEntryListRequest {
		r := describeReq()
		r.MaxResult = requests.NewInteger(100)
		return r
	}
	b.ResetTimer()
	for b.Loop() {
		resp, err := c.DescribeRouteEntryList(req())
		if err != nil || len(resp.RouteEntrys.RouteEntry) != 100 {
			b.Fatalf("page: %v, %d entries", err, len(resp.RouteEntrys.RouteEntry))
		}
	}
}

// BenchmarkCreateRouteEntries measures a 50-entry batch create with the
// instantaneous write model. The table grows with every iteration, so run it
// with a fixed -benchtime (e.g. 100x) to compare runs.
func BenchmarkCreateRouteEntries(b *testing.B) {
	ts := alisim.StartForTest(b, alisim.Options{AccessKeyID: testKeyID, AccessKeySecret: testKeySecret, WriteBase: -1, WritePerEntry: -1})
	if err := ts.Sim.SetQuota(tableID, 1<<30); err != nil {
		b.Fatal(err)
	}
	c, err := vpc.NewClientWithOptions(region, sdkConfig(), testCred())
	if err != nil {
		b.Fatal(err)
	}
	c.Domain = ts.APIEndpoint
	n := 0
	b.ResetTimer()
	for b.Loop() {
		entries := make([]vpc.CreateRouteEntriesRouteEntries, 50)
		for i := range entries {
			entries[i] = batchEntry(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), 32).String(), "i-2vcxxr")
			n++
		}
		req := vpc.CreateCreateRouteEntriesRequest()
		req.RouteEntries = &entries
		resp, err := c.CreateRouteEntries(req)
		if err != nil || resp.SuccessCount != 50 {
			b.Fatalf("batch: %v %+v", err, resp)
		}
	}
}
