package cloud

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func putCustomEntries(t *testing.T, ts *alisim.TestServer, n int) {
	t.Helper()
	if err := ts.Sim.SetQuota(alisim.DefaultTableID, n+10); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 50, byte(i / 256), byte(i % 256)}), 32)
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: dst, NextHopID: "i-2vcxxr"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListRestartsOnRefusedNextToken: the service refuses the NextToken of
// the second page (IllegalParam.NextTokenExpired, as after a long pause
// between pages); the listing starts over and returns every entry once.
func TestListRestartsOnRefusedNextToken(t *testing.T) {
	for _, code := range []string{alisim.CodeNextTokenExpired, alisim.CodeIllegalNextToken} {
		t.Run(code, func(t *testing.T) {
			ts := startSim(t, alisim.Options{})
			const n = 250
			putCustomEntries(t, ts, n)
			c := newTestCloud(t, ts, nil, testTuning(nil, nil))
			ts.Sim.InjectFault(alisim.Fault{Action: "DescribeRouteEntryList", Param: "NextToken", Code: code, Count: 1})
			rs, err := c.Table().List(c.ctx)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			seen := map[string]int{}
			for _, r := range rs {
				seen[r.EntryID]++
			}
			if len(rs) != n || len(seen) != n {
				t.Fatalf("listed %d entries (%d distinct), want %d", len(rs), len(seen), n)
			}
			if got := ts.Sim.Counters()["DescribeRouteEntryList"][code]; got != 1 {
				t.Fatalf("%s answered %d times, want 1", code, got)
			}
		})
	}
}

// TestListGivesUpWhenTokensKeepExpiring: tokens that expire faster than
// the next page is asked for fail the listing after a bounded number of
// walks, with the cloud's code, instead of looping.
func TestListGivesUpWhenTokensKeepExpiring(t *testing.T) {
	ts := startSim(t, alisim.Options{NextTokenTTL: time.Nanosecond})
	putCustomEntries(t, ts, 150)
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	_, err := c.Table().List(c.ctx)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != alisim.CodeNextTokenExpired {
		t.Fatalf("List with ever-expiring tokens: %v, want %s", err, alisim.CodeNextTokenExpired)
	}
	if got := ts.Sim.Counters()["DescribeRouteEntryList"][alisim.CodeNextTokenExpired]; got != maxListRestarts+1 {
		t.Fatalf("%d walks refused, want %d", got, maxListRestarts+1)
	}
}
