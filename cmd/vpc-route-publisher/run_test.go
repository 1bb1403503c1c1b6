package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/ipam"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

const (
	testKeyID     = "LTAItestkeyid"
	testKeySecret = "test-secret"
)

// cluster is a fake Kubernetes cluster and a simulated cloud for one test.
type cluster struct {
	t     *testing.T
	kube  *kubefake.Clientset
	dyn   *dynamicfake.FakeDynamicClient
	sim   *alisim.TestServer
	creds string
	ln    *listeners
}

func testNode(instance, podCIDR string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: alisim.DefaultRegion + "." + instance}}
	n.Spec.ProviderID = alisim.DefaultRegion + "." + instance
	n.Spec.PodCIDR = podCIDR
	n.Spec.PodCIDRs = []string{podCIDR}
	return n
}

func newCluster(t *testing.T, nodes ...*corev1.Node) *cluster {
	t.Helper()
	objs := make([]runtime.Object, len(nodes))
	for i, n := range nodes {
		objs[i] = n
	}
	return &cluster{
		t:    t,
		kube: kubefake.NewClientset(objs...),
		dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			ipam.SpiderIPPoolGVR: "SpiderIPPoolList",
			{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}: "CustomResourceDefinitionList",
		}),
		sim:   alisim.StartForTest(t, alisim.Options{AccessKeyID: testKeyID, AccessKeySecret: testKeySecret, WriteBase: 10 * time.Millisecond}),
		creds: writeCredentials(t, testKeyID, testKeySecret),
		ln:    newListeners(),
	}
}

func (c *cluster) env() env {
	e := testEnv()
	e.clients = func(string, string) (*kubeClients, error) {
		return &kubeClients{kube: c.kube, dynamic: c.dyn, election: c.kube}, nil
	}
	e.listening = c.ln.record
	e.connectBackoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1 << 30}
	e.getenv = func(string) string { return "" }
	return e
}

// cloudArgs point the cloud layer at the simulator.
func (c *cluster) cloudArgs() []string {
	return []string{
		"--region=" + alisim.DefaultRegion, "--vpc-id=" + alisim.DefaultVPCID,
		"--vpc-endpoint=" + c.sim.APIEndpoint, "--ecs-endpoint=" + c.sim.APIEndpoint, "--sts-endpoint=" + c.sim.APIEndpoint,
		"--metadata-endpoint=" + c.sim.MetadataURL, "--cloud-insecure-http", "--credentials-dir=" + c.creds,
		"--cloud-qps=1000", "--cloud-burst=1000", "--cloud-call-timeout=5s", "--route-wait-timeout=10s",
	}
}

func (c *cluster) runArgs(extra ...string) []string {
	args := with("run", "--metrics-bind-address=127.0.0.1:0", "--health-bind-address=127.0.0.1:0",
		"--sync-coalesce=10ms", "--resync-period=200ms")
	return append(append(args, c.cloudArgs()...), extra...)
}

// start runs the command in the background; the returned function
// cancels it and returns its exit code and standard error.
func (c *cluster) start(e env, args []string) func() (int, string) {
	c.t.Helper()
	_, ctx := ktesting.NewTestContext(c.t)
	ctx, cancel := context.WithCancel(ctx)
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, &stderr, e) }()
	var (
		once sync.Once
		code int
	)
	wait := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				code = -1
			}
		})
		return code
	}
	c.t.Cleanup(func() { wait() })
	return func() (int, string) {
		if wait() == -1 {
			c.t.Fatal("the command did not stop within 30s of cancellation")
		}
		return code, stderr.String()
	}
}

func (c *cluster) audit(extra ...string) (int, string, string) {
	c.t.Helper()
	args := append(with("audit"), c.cloudArgs()...)
	return invoke(c.t, c.env(), append(args, extra...)...)
}

// eventually polls cond until it holds or fails the test after a deadline.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not reached; last: %s", what, last)
	}
}

// availableRoutes returns the simulator's Available entries of the table
// carrying our marker, as "destination->instance".
func (c *cluster) availableRoutes() []string {
	entries, err := c.sim.Sim.Routes(alisim.DefaultTableID)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if m, ok := route.ParseMarker(e.Description); ok && m.Cluster == "test" && e.Status == route.StatusAvailable {
			out = append(out, e.Destination.String()+"->"+e.NextHopID)
		}
	}
	return out
}

func get(url string) (int, string) {
	resp, err := http.Get(url) //nolint:gosec,noctx // loopback test server.
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRunPublishesAndAuditAgrees(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-2vcxxs", "10.244.1.0/24"))
	stop := c.start(c.env(), c.runArgs("--leader-elect=false", "--cidr-source=nodes"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	health, metrics, err := c.ln.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if code, body := get("http://" + health + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %q", code, body)
	}
	eventually(t, "routes published", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.0.0/24->i-2vcxxr,10.244.1.0/24->i-2vcxxs", got
	})
	eventually(t, "ready", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusOK, body
	})
	eventually(t, "node condition", func() (bool, string) {
		n, err := c.kube.CoreV1().Nodes().Get(t.Context(), alisim.DefaultRegion+".i-2vcxxr", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeNetworkUnavailable {
				return cond.Status == corev1.ConditionFalse && cond.Reason == route.ConditionReasonRouteCreated, fmt.Sprint(cond)
			}
		}
		return false, "no NetworkUnavailable condition"
	})
	_, body := get("http://" + metrics + "/metrics")
	for _, m := range []string{
		`vpc_route_publisher_route_entries{state="present",table="` + alisim.DefaultTableID + `"} 2`,
		"vpc_route_publisher_leader 1",
		"vpc_route_publisher_build_info{goversion=",
		"vpc_route_publisher_cloud_api_calls_total{",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}

	// The audit sees the same state, without a lease and without writing.
	code, stdout, stderr := c.audit("-o", "json", "--cidr-source=nodes")
	if code != exitOK {
		t.Fatalf("audit in sync: exit %d, stderr %q, stdout %s", code, stderr, stdout)
	}
	var report route.Report
	if err := json.Unmarshal([]byte(stdout), &report); err != nil || len(report.Routes) != 2 {
		t.Errorf("audit JSON report: %v, %d routes: %s", err, len(report.Routes), stdout)
	}

	if code, stderr := stop(); code != exitOK {
		t.Errorf("run after cancellation: exit %d, stderr %q", code, stderr)
	}
	// Stopped: drift made now is reported by the audit, which writes nothing.
	entries, _ := c.sim.Sim.Routes(alisim.DefaultTableID)
	for _, e := range entries {
		if e.Destination.String() == "10.244.1.0/24" {
			if err := c.sim.Sim.DeleteRoute(e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "route deleted out of band", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.0.0/24->i-2vcxxr", got
	})
	code, stdout, stderr = c.audit("--cidr-source=nodes")
	if code != exitFailure || !strings.Contains(stdout, "missing") {
		t.Errorf("audit with drift: exit %d, stderr %q, stdout %s", code, stderr, stdout)
	}
	if got := strings.Join(c.availableRoutes(), ","); got != "10.244.0.0/24->i-2vcxxr" {
		t.Errorf("audit wrote to the route table: %s", got)
	}
}

func TestRunWithLeaderElectionReleasesTheLease(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	// Default --cidr-source=auto, without the SpiderIPPool CRD.
	stop := c.start(c.env(), c.runArgs("--leader-elect-resource-namespace=routing",
		"--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=100ms"))
	eventually(t, "routes published by the leader", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.0.0/24->i-2vcxxr", got
	})
	lease, err := c.kube.CoordinationV1().Leases("routing").Get(t.Context(), "vpc-route-publisher", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("lease while leading: %+v, %v", lease, err)
	}
	if code, stderr := stop(); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lease, err = c.kube.CoordinationV1().Leases("routing").Get(t.Context(), "vpc-route-publisher", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		t.Errorf("lease still held by %q after shutdown", *h)
	}
}

func TestReadinessFollowsCredentials(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	// The first connection attempts are refused as unauthorized.
	var attempts atomic.Int32
	release := make(chan struct{})
	e := c.env()
	connect := e.connect
	e.connect = func(ctx context.Context, opts *cloud.Options, clusterID string, reg prometheus.Registerer) (*cloudAccess, error) {
		if attempts.Add(1) <= 2 {
			return nil, fmt.Errorf("describing VPC %s: %w", alisim.DefaultVPCID, route.ErrUnauthorized)
		}
		<-release
		return connect(ctx, opts, clusterID, reg)
	}
	stop := c.start(e, c.runArgs("--leader-elect=false"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	health, _, err := c.ln.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "unready while credentials are rejected", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "[-]cloud failed: credentials rejected") && attempts.Load() >= 3, body
	})
	if code, _ := get("http://" + health + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while unready, want 200", code)
	}
	close(release)
	eventually(t, "ready once connected", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusOK, body
	})

	// The key is disabled while running: the next resync is refused and
	// the replica turns unready; re-enabled, it is ready again.
	if err := c.sim.Sim.SetAccessKeyDisabled(testKeyID, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unready once the key is disabled", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "credentials rejected"), body
	})
	if err := c.sim.Sim.SetAccessKeyDisabled(testKeyID, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready again once the key is enabled", func() (bool, string) {
		code, body := get("http://" + health + "/readyz")
		return code == http.StatusOK, body
	})
	if code, stderr := stop(); code != exitOK {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The calls of failed connection attempts are counted: a replica stuck on a
// rejected key shows the Alibaba error code in its metrics, not only in its
// log and readiness.
func TestRejectedConnectionAttemptsAreInTheMetrics(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	if err := c.sim.Sim.SetAccessKeyDisabled(testKeyID, true); err != nil {
		t.Fatal(err)
	}
	stop := c.start(c.env(), c.runArgs("--leader-elect=false"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	health, metrics, err := c.ln.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejected calls counted", func() (bool, string) {
		_, body := get("http://" + metrics + "/metrics")
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "vpc_route_publisher_cloud_api_calls_total{") && !strings.Contains(line, `code="Success"`) {
				return true, line
			}
		}
		return false, body
	})
	if code, _ := get("http://" + health + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the key disabled, want 503", code)
	}
	if err := c.sim.Sim.SetAccessKeyDisabled(testKeyID, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready once the key works, with the calls of every attempt counted", func() (bool, string) {
		code, _ := get("http://" + health + "/readyz")
		_, body := get("http://" + metrics + "/metrics")
		var failed, succeeded bool
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "vpc_route_publisher_cloud_api_calls_total{") {
				succeeded = succeeded || strings.Contains(line, `code="Success"`)
				failed = failed || !strings.Contains(line, `code="Success"`)
			}
		}
		return code == http.StatusOK && failed && succeeded, body
	})
	if code, stderr := stop(); code != exitOK {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestCloudConfigErrorsExitWithUsage(t *testing.T) {
	c := newCluster(t)
	e := c.env()
	e.connect = func(context.Context, *cloud.Options, string, prometheus.Registerer) (*cloudAccess, error) {
		return nil, fmt.Errorf("describing VPC vpc-missing in region %s: %w", alisim.DefaultRegion, route.ErrNotFound)
	}
	code, _, stderr := invoke(t, e, c.runArgs("--leader-elect=false")...)
	if code != exitUsage || !strings.Contains(stderr, "connecting to Alibaba Cloud: describing VPC vpc-missing") {
		t.Errorf("run: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = invoke(t, e, append(with("audit"), c.cloudArgs()...)...)
	if code != exitUsage || !strings.Contains(stderr, "connecting to Alibaba Cloud") {
		t.Errorf("audit: exit %d, stderr %q", code, stderr)
	}
}

func TestSpiderpoolModeNeedsTheCRD(t *testing.T) {
	c := newCluster(t)
	for _, sub := range []string{"run", "audit"} {
		args := append(with(sub, "--cidr-source=spiderpool"), c.cloudArgs()...)
		if sub == "run" {
			args = append(args, "--leader-elect=false", "--metrics-bind-address=127.0.0.1:0", "--health-bind-address=127.0.0.1:0")
		}
		code, _, stderr := invoke(t, c.env(), args...)
		if code != exitUsage || !strings.Contains(stderr, "is the spiderippools.spiderpool.spidernet.io CRD installed?") {
			t.Errorf("%s: exit %d, stderr %q", sub, code, stderr)
		}
	}
}

func TestRunFailsOnBusyAddress(t *testing.T) {
	c := newCluster(t)
	stop := c.start(c.env(), c.runArgs("--leader-elect=false"))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	health, _, err := c.ln.wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	args := with("run", "--cidr-source=nodes", "--leader-elect=false", "--health-bind-address="+health, "--metrics-bind-address=127.0.0.1:0")
	code, _, stderr := invoke(t, c.env(), append(args, c.cloudArgs()...)...)
	if code != exitFailure || !strings.Contains(stderr, "listening for health on "+health) {
		t.Errorf("second run on a busy address: exit %d, stderr %q", code, stderr)
	}
	if code, stderr := stop(); code != exitOK {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestCloudHealth(t *testing.T) {
	h := newCloudHealth()
	if !errors.Is(h.check(), errNotConnected) {
		t.Fatalf("initial check = %v, want not connected", h.check())
	}
	table := probedTable{Table: &stubTable{listErr: fmt.Errorf("listing: %w", route.ErrUnauthorized)}, health: h}
	h.set(nil)
	if _, err := table.List(t.Context()); err == nil {
		t.Fatal("stub List succeeded")
	}
	if err := h.check(); err == nil || !strings.Contains(err.Error(), "credentials rejected") {
		t.Errorf("after a rejected List: %v", err)
	}
	// Tables may come from a cache: its success proves nothing.
	if _, err := table.Tables(t.Context()); err != nil {
		t.Fatal(err)
	}
	if h.check() == nil {
		t.Error("a cached Tables answer cleared the rejection")
	}
	// Throttling says nothing about the credentials.
	table.Table.(*stubTable).listErr = fmt.Errorf("listing: %w", route.ErrThrottled)
	_, _ = table.List(t.Context())
	if h.check() == nil {
		t.Error("a throttled List cleared the rejection")
	}
	table.Table.(*stubTable).listErr = nil
	if _, err := table.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.check(); err != nil {
		t.Errorf("after a successful List: %v", err)
	}
	table.Create(t.Context(), []route.Route{{}})
	if err := h.check(); err == nil {
		t.Error("a rejected create left the replica ready")
	}
}

// stubTable lists with a preset error and refuses every write as
// unauthorized.
type stubTable struct{ listErr error }

func (s *stubTable) Tables(context.Context) ([]route.TableInfo, error) {
	return []route.TableInfo{{ID: "vtb-1"}}, nil
}
func (s *stubTable) List(context.Context) ([]route.Route, error) { return nil, s.listErr }
func (s *stubTable) Create(_ context.Context, rs []route.Route) []route.Result {
	return refuse(rs)
}
func (s *stubTable) Delete(_ context.Context, rs []route.Route) []route.Result {
	return refuse(rs)
}
func (s *stubTable) Adopt(_ context.Context, rs []route.Route) []route.Result {
	return refuse(rs)
}

func refuse(rs []route.Route) []route.Result {
	out := make([]route.Result, len(rs))
	for i, r := range rs {
		out[i] = route.Result{Route: r, Err: fmt.Errorf("writing: %w", route.ErrUnauthorized)}
	}
	return out
}

func TestSpiderpoolModePublishesPools(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-2vcxxs", "10.244.1.0/24"))
	c.kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
		GroupVersion: ipam.SpiderIPPoolGVR.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: ipam.SpiderIPPoolGVR.Resource, Kind: "SpiderIPPool"}},
	}}
	for i, p := range []struct{ name, node, ips string }{
		{"pool-r", alisim.DefaultRegion + ".i-2vcxxr", "10.244.5.1-10.244.5.100"},
		{"pool-s", alisim.DefaultRegion + ".i-2vcxxs", "10.244.6.7"},
		{"pool-gone", alisim.DefaultRegion + ".i-gone", "10.244.7.0-10.244.7.255"},
	} {
		pool := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "spiderpool.spidernet.io/v2beta1",
			"kind":       "SpiderIPPool",
			"metadata":   map[string]any{"name": p.name, "creationTimestamp": fmt.Sprintf("2026-01-01T00:00:0%dZ", i)},
			"spec": map[string]any{
				"subnet":   "10.244.0.0/16",
				"ips":      []any{p.ips},
				"nodeName": []any{p.node},
			},
		}}
		if _, err := c.dyn.Resource(ipam.SpiderIPPoolGVR).Create(t.Context(), pool, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := c.start(c.env(), c.runArgs("--leader-elect=false", "--cidr-source=spiderpool"))
	eventually(t, "pool routes published", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.5.0/25->i-2vcxxr,10.244.6.7/32->i-2vcxxs", got
	})
	code, stdout, stderr := c.audit("--cidr-source=spiderpool")
	if code != exitFailure || !strings.Contains(stdout, ipam.ReasonPoolNodeNotFound) {
		t.Errorf("audit with a pool of a missing node: exit %d, stderr %q, stdout %s", code, stderr, stdout)
	}
	if code, stderr := stop(); code != exitOK {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestFollowerTakesOver(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	args := c.runArgs("--cidr-source=nodes", "--leader-elect-resource-namespace=routing",
		"--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=100ms")
	holder := func() string {
		lease, err := c.kube.CoordinationV1().Leases("routing").Get(t.Context(), "vpc-route-publisher", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	stopFirst := c.start(c.env(), args)
	eventually(t, "first replica leads", func() (bool, string) { return holder() != "", holder() })
	first := holder()
	stopSecond := c.start(c.env(), args)
	eventually(t, "routes published", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.0.0/24->i-2vcxxr", got
	})
	if h := holder(); h != first {
		t.Fatalf("the lease moved to %q while %q was leading", h, first)
	}

	if code, stderr := stopFirst(); code != exitOK {
		t.Fatalf("first replica: exit %d, stderr %q", code, stderr)
	}
	// Released on shutdown: the follower takes over well before the lease
	// would have expired, and keeps publishing.
	eventually(t, "second replica leads", func() (bool, string) {
		h := holder()
		return h != "" && h != first, h
	})
	if err := c.kube.CoreV1().Nodes().Delete(t.Context(), alisim.DefaultRegion+".i-2vcxxr", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kube.CoreV1().Nodes().Create(t.Context(), testNode("i-2vcxxs", "10.244.1.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new leader reconciles", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.1.0/24->i-2vcxxs", got
	})
	if code, stderr := stopSecond(); code != exitOK {
		t.Fatalf("second replica: exit %d, stderr %q", code, stderr)
	}
}
