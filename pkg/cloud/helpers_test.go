package cloud

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

const (
	testKeyID     = "LTAItestkey0000000001"
	testKeySecret = "test-secret-0123456789abcdef"
	testCluster   = "c1"
)

// startSim starts a simulator on loopback with the test key.
func startSim(t *testing.T, opts alisim.Options) *alisim.TestServer {
	t.Helper()
	if opts.AccessKeyID == "" {
		opts.AccessKeyID, opts.AccessKeySecret = testKeyID, testKeySecret
	}
	if opts.WriteBase == 0 {
		opts.WriteBase = 20 * time.Millisecond
	}
	return alisim.StartForTest(t, opts)
}

// simOptions are cloud options pointing at the simulator, with explicit
// region and VPC so that the metadata service is not needed.
func simOptions(ts *alisim.TestServer) *Options {
	o := NewOptions()
	o.Region = alisim.DefaultRegion
	o.VPCID = alisim.DefaultVPCID
	o.VPCEndpoint = ts.APIEndpoint
	o.ECSEndpoint = ts.APIEndpoint
	o.STSEndpoint = ts.APIEndpoint
	o.MetadataEndpoint = ts.MetadataURL
	o.InsecureHTTP = true
	o.CallTimeout = 5 * time.Second
	o.RouteWaitTimeout = 10 * time.Second
	o.QPS = 1000
	o.Burst = 1000
	return o
}

// envMap is a fake process environment.
func envMap(kv map[string]string) credentialEnv {
	return func(k string) string { return kv[k] }
}

// testTuning is fast backoff and polling, the test key in the environment
// and a request recorder.
func testTuning(env map[string]string, rec *recorder) tuning {
	tu := defaultTuning()
	tu.retry = backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Factor: 2}
	tu.poll = backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Factor: 1.5}
	if env == nil {
		env = map[string]string{EnvAccessKeyID: testKeyID, EnvAccessKeySecret: testKeySecret}
	}
	tu.getenv = envMap(env)
	if rec != nil {
		tu.transport = rec
	}
	return tu
}

type testCloud struct {
	*Cloud
	reg *prometheus.Registry
	ctx context.Context
}

// newTestCloud builds a Cloud against the simulator; mutate adjusts the
// options.
func newTestCloud(t *testing.T, ts *alisim.TestServer, mutate func(*Options), tu tuning) *testCloud {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	o := simOptions(ts)
	if mutate != nil {
		mutate(o)
	}
	reg := prometheus.NewRegistry()
	c, err := newCloud(ctx, o, testCluster, reg, tu)
	if err != nil {
		t.Fatalf("newCloud: %v", err)
	}
	return &testCloud{Cloud: c, reg: reg, ctx: ctx}
}

// counter returns a counter's value by labels.
func (c *testCloud) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	m := c.Table().inv.metrics
	var vec *prometheus.CounterVec
	switch name {
	case "calls":
		vec = m.calls
	case "throttles":
		vec = m.throttles
	case "retries":
		vec = m.retries
	default:
		t.Fatalf("unknown counter %s", name)
	}
	return testutil.ToFloat64(vec.WithLabelValues(labels...))
}

// recorder is an http.RoundTripper recording, per action, the number of
// route entries (RouteEntries.N.DstCidrBlock parameters) of each call the
// cloud answered with success.
type recorder struct {
	mu      sync.Mutex
	entries map[string][]int
	queries map[string][]url.Values
	next    http.RoundTripper
}

func newRecorder() *recorder {
	return &recorder{entries: map[string][]int{}, queries: map[string][]url.Values{}, next: http.DefaultTransport.(*http.Transport).Clone()}
}

var entryParam = regexp.MustCompile(`^RouteEntries\.\d+\.DstCidrBlock$`)

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	q, _ := url.ParseQuery(req.URL.RawQuery)
	n := 0
	for k := range q {
		if entryParam.MatchString(k) {
			n++
		}
	}
	resp, err := r.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusOK {
		r.mu.Lock()
		r.entries[q.Get("Action")] = append(r.entries[q.Get("Action")], n)
		r.queries[q.Get("Action")] = append(r.queries[q.Get("Action")], q)
		r.mu.Unlock()
	}
	return resp, err
}

// calls returns the parameters of the successful calls of an action and
// forgets them.
func (r *recorder) calls(action string) []url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	qs := r.queries[action]
	delete(r.queries, action)
	return qs
}

func (r *recorder) batches(action string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.entries[action]...)
}

// podRoutes returns n desired routes 10.X.Y.0/24 → instance in table.
func podRoutes(table, instance string, n int) []route.Route {
	rs := make([]route.Route, n)
	for i := range rs {
		rs[i] = route.Route{
			Table:       table,
			Destination: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), 0}), 24),
			NextHop:     instance,
			Node:        "cn-chengdu." + instance,
		}
	}
	return rs
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// simRoutes returns the custom entries of a table in the simulator.
func simRoutes(t *testing.T, ts *alisim.TestServer, table string) map[netip.Prefix]alisim.RouteEntry {
	t.Helper()
	es, err := ts.Sim.Routes(table)
	if err != nil {
		t.Fatalf("simulator routes of %s: %v", table, err)
	}
	out := map[netip.Prefix]alisim.RouteEntry{}
	for _, e := range es {
		if e.Type == alisim.EntryTypeCustom {
			out[e.Destination] = e
		}
	}
	return out
}

func resultErrs(t *testing.T, results []route.Result) {
	t.Helper()
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("route %s in %s: %v", r.Route.Destination, r.Route.Table, r.Err)
		}
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
