package cloud

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func testInvoker(t *testing.T, callTimeout time.Duration) *invoker {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &invoker{
		limiter:     newAdaptiveLimiter(1000, 1000, time.Now),
		metrics:     m,
		callTimeout: callTimeout,
		retryFor:    10 * time.Second,
		backoff:     backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond, Factor: 2},
		now:         time.Now,
	}
}

// TestCallBuildsARequestPerAttempt: an attempt abandoned on timeout may
// still be inside the SDK (signing writes into the request's maps) when the
// retry starts, so the retry must get a request of its own.
func TestCallBuildsARequestPerAttempt(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	inv := testInvoker(t, 50*time.Millisecond)
	release := make(chan struct{})
	defer close(release)
	var mu sync.Mutex
	var seen []*vpc.DescribeRouteEntryListRequest
	send := func(req *vpc.DescribeRouteEntryListRequest) (*vpc.DescribeRouteEntryListResponse, error) {
		mu.Lock()
		seen = append(seen, req)
		first := len(seen) == 1
		mu.Unlock()
		if first {
			<-release // the first attempt hangs past its timeout
		}
		return &vpc.DescribeRouteEntryListResponse{}, nil
	}
	if _, err := call(ctx, inv, "DescribeRouteEntryList", func() *vpc.DescribeRouteEntryListRequest {
		req := vpc.CreateDescribeRouteEntryListRequest()
		req.RouteTableId = "vtb-1"
		return req
	}, send); err != nil {
		t.Fatalf("call after a timed-out attempt: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("%d attempts, want 2", len(seen))
	}
	if seen[0] == seen[1] {
		t.Error("the retry reused the request object of the abandoned attempt")
	}
	if got := seen[1].GetReadTimeout(); got != 50*time.Millisecond {
		t.Errorf("attempt read timeout = %v, want the call timeout", got)
	}
}

type fixedFence struct {
	deadline time.Time
	err      error
}

func (f fixedFence) WriteDeadline() (time.Time, error) { return f.deadline, f.err }

// TestWritesAreFenced: a write is not sent once the lease may be lost, and
// one that is sent carries the time left on the lease as its timeout, so
// that it cannot land after another replica took over. Reads are not fenced.
func TestWritesAreFenced(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	inv := testInvoker(t, 30*time.Second)
	sent := 0
	var timeout time.Duration
	create := func(req *vpc.CreateRouteEntriesRequest) (*vpc.CreateRouteEntriesResponse, error) {
		sent++
		timeout = req.GetReadTimeout()
		return &vpc.CreateRouteEntriesResponse{}, nil
	}
	build := vpc.CreateCreateRouteEntriesRequest

	lost := route.WithFence(ctx, fixedFence{err: route.ErrFenced})
	if _, err := call(lost, inv, "CreateRouteEntries", build, create); !errors.Is(err, route.ErrFenced) || sent != 0 {
		t.Errorf("write with a lost lease: err %v, %d sent; want ErrFenced and nothing sent", err, sent)
	}
	expiring := route.WithFence(ctx, fixedFence{deadline: time.Now().Add(50 * time.Millisecond)})
	if _, err := call(expiring, inv, "CreateRouteEntries", build, create); !errors.Is(err, route.ErrFenced) || sent != 0 {
		t.Errorf("write with 50ms of lease left: err %v, %d sent; want ErrFenced and nothing sent", err, sent)
	}
	held := route.WithFence(ctx, fixedFence{deadline: time.Now().Add(5 * time.Second)})
	if _, err := call(held, inv, "CreateRouteEntries", build, create); err != nil || sent != 1 {
		t.Fatalf("write with the lease held: err %v, %d sent", err, sent)
	}
	if timeout <= 0 || timeout > 5*time.Second {
		t.Errorf("write timeout = %v, want at most the 5s left on the lease", timeout)
	}
	read := func(*vpc.DescribeRouteEntryListRequest) (*vpc.DescribeRouteEntryListResponse, error) {
		return &vpc.DescribeRouteEntryListResponse{}, nil
	}
	if _, err := call(lost, inv, "DescribeRouteEntryList", vpc.CreateDescribeRouteEntryListRequest, read); err != nil {
		t.Errorf("a read was fenced: %v", err)
	}
}
