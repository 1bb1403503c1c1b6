package alisim_test

import (
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func TestThrottling(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock})
	ts.Sim.SetThrottle("DescribeRouteEntryList", 2, 3)
	c := vpcClient(t, ts, testCred())
	for i := range 3 {
		if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := c.DescribeRouteEntryList(describeReq())
	wantServerError(t, err, alisim.CodeThrottlingUser, http.StatusBadRequest)
	// Other actions have their own bucket.
	if _, err := ecsClient(t, ts, testCred()).DescribeInstances(ecsDescribeReq()); err != nil {
		t.Fatalf("unthrottled action: %v", err)
	}
	clock.Advance(500 * time.Millisecond) // one token at 2 QPS
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("call after refill: %v", err)
	}
	_, err = c.DescribeRouteEntryList(describeReq())
	wantServerError(t, err, alisim.CodeThrottlingUser, http.StatusBadRequest)
	ts.Sim.SetThrottle("DescribeRouteEntryList", 0, 0)
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("call after removing the limit: %v", err)
	}
	if n := ts.Sim.Counters()["DescribeRouteEntryList"]; n["Success"] != 5 || n[alisim.CodeThrottlingUser] != 2 {
		t.Fatalf("counters = %v, want 5 successes and 2 throttles", n)
	}
}

func TestThrottleEveryAction(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, ErrorStatus: map[string]int{alisim.CodeThrottlingUser: http.StatusTooManyRequests}})
	ts.Sim.SetThrottle("*", 1, 1)
	if _, err := vpcClient(t, ts, testCred()).DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatal(err)
	}
	_, err := ecsClient(t, ts, testCred()).DescribeInstances(ecsDescribeReq())
	wantServerError(t, err, alisim.CodeThrottlingUser, http.StatusTooManyRequests)
}

func TestFaultCountAndStatus(t *testing.T) {
	ts := start(t, instant)
	ts.Sim.InjectFault(alisim.Fault{Action: "CreateRouteEntry", Code: alisim.CodeServiceUnavailable, Count: 2})
	c := vpcClient(t, ts, testCred())
	for i := range 2 {
		_, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
		wantServerError(t, err, alisim.CodeServiceUnavailable, http.StatusServiceUnavailable)
		if got := customEntries(t, ts.Sim, tableID); len(got) != 0 {
			t.Fatalf("faulted call %d wrote an entry", i)
		}
	}
	if _, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr"); err != nil {
		t.Fatalf("call after the fault's count: %v", err)
	}
	if f := ts.Sim.Faults(); len(f) != 0 {
		t.Fatalf("expired fault still listed: %+v", f)
	}
	// A fault on another action does not touch this one; a custom status
	// and message are answered as given.
	ts.Sim.InjectFault(alisim.Fault{Action: "DeleteRouteEntry", Code: "Throttling.User", HTTPStatus: 429, Message: "slow down"})
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatal(err)
	}
	del := deleteReq(t, ts)
	_, err := c.DeleteRouteEntry(del)
	se := serverError(t, err, "Throttling.User", http.StatusTooManyRequests)
	if se.Message() != "slow down" {
		t.Fatalf("message = %q", se.Message())
	}
	ts.Sim.ClearFaults()
	if _, err := c.DeleteRouteEntry(deleteReq(t, ts)); err != nil {
		t.Fatalf("after clearing faults: %v", err)
	}
}

func TestFaultRateAndLatency(t *testing.T) {
	ts := start(t, alisim.Options{})
	ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Code: alisim.CodeInternalError, Rate: 0.5})
	c := vpcClient(t, ts, testCred())
	failed := 0
	const calls = 200
	for range calls {
		_, err := c.DescribeRouteEntryList(describeReq())
		var se *sdkerrors.ServerError
		switch {
		case err == nil:
		case errors.As(err, &se) && se.ErrorCode() == alisim.CodeInternalError && se.HttpStatus() == http.StatusInternalServerError:
			failed++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	// Binomial(200, 0.5): outside [60, 140] has probability below 1e-8.
	if failed < 60 || failed > 140 {
		t.Fatalf("%d of %d calls failed at rate 0.5", failed, calls)
	}
	ts.Sim.ClearFaults()
	ts.Sim.InjectFault(alisim.Fault{Latency: 150 * time.Millisecond, Count: 1})
	begin := time.Now()
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("delayed call: %v", err)
	}
	if took := time.Since(begin); took < 150*time.Millisecond {
		t.Fatalf("delayed call took %v, want at least 150ms", took)
	}
}

func TestForcedBusy(t *testing.T) {
	ts := start(t, alisim.Options{BusyCode: "OperationConflict", WriteBase: -1, WritePerEntry: -1})
	if err := ts.Sim.SetBusy(vpcID, true); err != nil {
		t.Fatal(err)
	}
	c := vpcClient(t, ts, testCred())
	_, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	wantServerError(t, err, "OperationConflict", http.StatusBadRequest)
	if !ts.Sim.Busy(vpcID) {
		t.Fatal("Busy() = false for a forced-busy VPC")
	}
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("reads work while busy: %v", err)
	}
	if err := ts.Sim.SetBusy(vpcID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr"); err != nil {
		t.Fatalf("after clearing busy: %v", err)
	}
}

// deleteReq puts an Available entry out of band and returns a request
// deleting it.
func deleteReq(t *testing.T, ts *alisim.TestServer) *vpc.DeleteRouteEntryRequest {
	t.Helper()
	e, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: tableID, Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, byte(len(customEntries(t, ts.Sim, tableID))), 0}), 24), NextHopID: "i-2vcxxr"})
	if err != nil {
		t.Fatal(err)
	}
	req := vpc.CreateDeleteRouteEntryRequest()
	req.RouteEntryId = e.ID
	return req
}
