package cloud

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// transientCodes are the busy and transient codes of the route APIs, with
// the HTTP statuses they come with: the error tables of CreateRouteEntry and
// DeleteRouteEntry (misspellings are the real codes), the retry lists of
// Terraform's alicloud_route_entry and alicloud_vpc_route_entry, and its
// NeedRetry (ServiceUnavailable, Rejected.Throttling, Throttling*, any 5xx).
var transientCodes = []struct {
	code   string
	status int
	class  error
}{
	{"TaskConflict", 400, route.ErrBusy},
	{"IncorrectRouteEntryStatus", 400, route.ErrBusy},
	{"IncorrcetRouteEntryStatus", 400, route.ErrBusy},
	{"IncorrectVpcStatus", 400, route.ErrBusy},
	{"IncorrectVSwitchStatus", 400, route.ErrBusy},
	{"IncorrectInstanceStatus", 400, route.ErrBusy},
	{"IncorrectInstanceStatus", 403, route.ErrBusy},
	{"OperationFailed.DistibuteLock", 400, route.ErrBusy},
	{"IncorrectStatus", 400, route.ErrBusy},
	{"IncorrectStatus.RouteTableStatus", 400, route.ErrBusy},
	{"IncorrectStatus.VpcRouteEntry", 400, route.ErrBusy},
	{"IncorrectStatus.Ipv6Address", 400, route.ErrBusy},
	{"IncorrectStatus.MultiScopeRiRouteEntry", 400, route.ErrBusy},
	{"OperationConflict", 400, route.ErrBusy},
	{"SystemBusy", 400, route.ErrBusy},
	{"ServiceUnavailable", 503, route.ErrBusy},
	{"Rejected.Throttling", 400, route.ErrThrottled},
	{"Throttling", 400, route.ErrThrottled},
	{"Throttling.User", 400, route.ErrThrottled},
	{"Throttling.Api", 400, route.ErrThrottled},
	{"Throttling.User", 429, route.ErrThrottled},
	{"InternalError", 500, route.ErrBusy},
	{"VPC.ERROR", 500, route.ErrBusy},
	{"Vpc.Error", 500, route.ErrBusy},
	{"Internal.Error", 500, route.ErrBusy},
}

func TestClassifyTransientCodes(t *testing.T) {
	for _, tc := range transientCodes {
		got := classifyCode(tc.code, tc.status)
		if !errors.Is(got, tc.class) || !isRetryableClass(got) {
			t.Errorf("classifyCode(%q, %d) = %v, want %v (retryable)", tc.code, tc.status, got, tc.class)
		}
		if errors.Is(got, route.ErrInvalid) || errors.Is(got, route.ErrUnauthorized) {
			t.Errorf("classifyCode(%q, %d) = %v: a transient code must never be invalid or unauthorized", tc.code, tc.status, got)
		}
	}
}

// TestTransientCodesRetriedThroughSDK has the simulator answer each code
// with its status to the real SDK client, a few times in a row, and shows
// that the listing and the write still succeed: the publisher retried with
// backoff instead of giving up or calling the credentials bad.
func TestTransientCodesRetriedThroughSDK(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	for i, tc := range transientCodes {
		t.Run(fmt.Sprintf("%s/%d", tc.code, tc.status), func(t *testing.T) {
			ts.Sim.ClearFaults()
			ts.Sim.ResetCounters()
			for _, action := range []string{"DescribeRouteEntryList", "CreateRouteEntries"} {
				ts.Sim.InjectFault(alisim.Fault{Action: action, Code: tc.code, HTTPStatus: tc.status, Count: 2})
			}
			if _, err := c.Table().List(c.ctx); err != nil {
				t.Fatalf("List after %s: %v", tc.code, err)
			}
			rs := podRoutes(alisim.DefaultTableID, "i-2vcxxr", 1)
			rs[0].Destination = mustPrefix(fmt.Sprintf("10.%d.0.0/24", 100+i))
			resultErrs(t, c.Table().Create(c.ctx, rs))
			counters := ts.Sim.Counters()
			for _, action := range []string{"DescribeRouteEntryList", "CreateRouteEntries"} {
				if got := counters[action][tc.code]; got != 2 {
					t.Errorf("%s answered %s %d times, want 2 (the injected faults)", action, tc.code, got)
				}
			}
		})
	}
}
