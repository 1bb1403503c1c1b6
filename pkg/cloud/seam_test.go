package cloud

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// lossyVPC is a hand-written vpcAPI double for what the simulator cannot
// stage deterministically: a CreateRouteEntries call that takes effect but
// whose answer is lost (a timeout), so the retry meets its own entries.
type lossyVPC struct {
	vpcAPI // unused methods panic

	mu       sync.Mutex
	entries  map[string]vpc.RouteEntry // by destination
	loseNext int
	calls    int
}

var timeoutErr = &url.Error{Op: "Post", URL: "http://vpc/?SecurityToken=secret", Err: &net.OpError{Op: "read", Net: "tcp", Err: errTimeout{}}}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

func (f *lossyVPC) CreateRouteEntries(req *vpc.CreateRouteEntriesRequest) (*vpc.CreateRouteEntriesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	resp := vpc.CreateCreateRouteEntriesResponse()
	resp.RequestId = "req-create"
	for _, e := range *req.RouteEntries {
		if _, dup := f.entries[e.DstCidrBlock]; dup {
			resp.FailedRouteEntries = append(resp.FailedRouteEntries, vpc.FailedRouteEntriesItem{DstCidrBlock: e.DstCidrBlock, NextHop: e.NextHop, FailedCode: "VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE"})
			continue
		}
		f.entries[e.DstCidrBlock] = vpc.RouteEntry{
			RouteTableId: e.RouteTableId, DestinationCidrBlock: e.DstCidrBlock, RouteEntryId: "rte-" + e.DstCidrBlock,
			InstanceId: e.NextHop, NextHopType: e.NextHopType, Description: e.Description, Status: route.StatusAvailable,
		}
	}
	if f.loseNext > 0 {
		f.loseNext--
		return nil, timeoutErr
	}
	return resp, nil
}

func (f *lossyVPC) DescribeRouteEntryList(req *vpc.DescribeRouteEntryListRequest) (*vpc.DescribeRouteEntryListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := vpc.CreateDescribeRouteEntryListResponse()
	for _, e := range f.entries {
		if e.RouteTableId == req.RouteTableId {
			resp.RouteEntrys.RouteEntry = append(resp.RouteEntrys.RouteEntry, e)
		}
	}
	return resp, nil
}

func seamTables(t *testing.T, api vpcAPI) *Tables {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tu := testTuning(nil, nil)
	return &Tables{
		vpcID: "vpc-1", clusterID: testCluster, api: api, quota: 200,
		inv: &invoker{
			limiter: newAdaptiveLimiter(1000, 1000, nil), metrics: m, callTimeout: time.Second,
			retryFor: 2 * time.Second, backoff: tu.retry, now: time.Now,
		},
		waitTimeout: 2 * time.Second, poll: tu.poll, now: time.Now,
	}
}

func TestCreateWhoseAnswerWasLostIsVerifiedAgainstTheTable(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	api := &lossyVPC{entries: map[string]vpc.RouteEntry{}, loseNext: 1}
	// Someone else's entry occupies one destination with another next hop.
	api.entries["10.0.2.0/24"] = vpc.RouteEntry{RouteTableId: "vtb-1", DestinationCidrBlock: "10.0.2.0/24", RouteEntryId: "rte-foreign", InstanceId: "i-other", Status: route.StatusAvailable}
	tables := seamTables(t, api)
	rs := podRoutes("vtb-1", "i-mine", 3)
	results := tables.Create(ctx, rs)
	if api.calls != 2 {
		t.Errorf("CreateRouteEntries calls = %d, want the lost call and its retry", api.calls)
	}
	for i, res := range results {
		if i == 2 {
			if !errors.Is(res.Err, route.ErrConflict) {
				t.Errorf("%s: %v, want ErrConflict (another next hop holds it)", res.Route.Destination, res.Err)
			}
			continue
		}
		if res.Err != nil || res.Route.EntryID == "" || res.Route.Status != route.StatusAvailable {
			t.Errorf("%s: %+v %v, want success: the duplicate is our own lost write", res.Route.Destination, res.Route, res.Err)
		}
	}
}
