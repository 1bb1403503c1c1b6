package ipam

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/yaml"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

var testClusterCIDRs = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("fd00:10:244::/48"),
}

// loadYAMLObjects reads a multi-document YAML file into unstructured objects.
func loadYAMLObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if string(js) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, u)
	}
	return out
}

func loadPools(t *testing.T) []*unstructured.Unstructured {
	return loadYAMLObjects(t, "testdata/spiderippools.yaml")
}

func node(name, created string, podCIDRs ...string) *corev1.Node {
	ts, err := time.Parse(time.RFC3339, created)
	if err != nil {
		panic(err)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(ts)}}
	n.Spec.PodCIDRs = podCIDRs
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	return n
}

// harness runs a Source on fake clients.
type harness struct {
	ctx     context.Context
	kube    *kubefake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	src     *Source
	changes atomic.Int64
}

func newHarness(t *testing.T, mode Mode, nodes []*corev1.Node, objs ...*unstructured.Unstructured) *harness {
	t.Helper()
	return newHarnessWith(t, mode, nodes, nil, objs...)
}

// newHarnessWith lets the test install reactors on the dynamic client
// before the informers start.
func newHarnessWith(t *testing.T, mode Mode, nodes []*corev1.Node, setup func(*dynamicfake.FakeDynamicClient), objs ...*unstructured.Unstructured) *harness {
	t.Helper()
	return newHarnessOpts(t, mode, nodes, Options{ClusterCIDRs: testClusterCIDRs}, setup, objs...)
}

// newHarnessOpts is newHarnessWith with the source's options.
func newHarnessOpts(t *testing.T, mode Mode, nodes []*corev1.Node, opts Options, setup func(*dynamicfake.FakeDynamicClient), objs ...*unstructured.Unstructured) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)

	kubeObjs := make([]runtime.Object, 0, len(nodes))
	for _, n := range nodes {
		kubeObjs = append(kubeObjs, n)
	}
	dynObjs := make([]runtime.Object, 0, len(objs))
	for _, o := range objs {
		dynObjs = append(dynObjs, o.DeepCopy())
	}
	h := &harness{ctx: ctx, kube: kubefake.NewClientset(kubeObjs...)}
	h.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds(), dynObjs...)
	if setup != nil {
		setup(h.dyn)
	}
	factory := informers.NewSharedInformerFactory(h.kube, 0)
	src, err := New(mode, factory.Core().V1().Nodes(), h.dyn, opts, func() { h.changes.Add(1) })
	if err != nil {
		t.Fatalf("New(%s): %v", mode, err)
	}
	h.src = src
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	src.Start(ctx)
	syncCtx, syncCancel := context.WithTimeout(ctx, 10*time.Second)
	defer syncCancel()
	if !src.WaitForCacheSync(syncCtx) {
		t.Fatalf("caches of the %s source did not sync", mode)
	}
	return h
}

// state is the outcome of Routes rendered for comparison.
type state struct {
	routes   []string // "node destination"
	problems []string // "object reason"
}

func render(routes []route.Route, problems []route.Problem) state {
	var s state
	for _, r := range routes {
		s.routes = append(s.routes, r.Node+" "+r.Destination.String())
	}
	for _, p := range problems {
		s.problems = append(s.problems, p.Object+" "+p.Reason)
	}
	return s
}

func (h *harness) state(t *testing.T) state {
	t.Helper()
	routes, problems, err := h.src.Routes(h.ctx)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	for _, p := range problems {
		_, name, _ := strings.Cut(p.Object, "/")
		if !strings.HasSuffix(p.Message, ".") || !strings.Contains(p.Message, name) {
			t.Errorf("problem message %q is not a sentence naming %s", p.Message, p.Object)
		}
	}
	return render(routes, problems)
}

// eventually polls until the source reports want, or fails after a deadline.
func (h *harness) eventually(t *testing.T, want state) {
	t.Helper()
	var got state
	err := wait.PollUntilContextTimeout(h.ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = h.state(t)
		return slices.Equal(got.routes, want.routes) && slices.Equal(got.problems, want.problems), nil
	})
	if err != nil {
		t.Fatalf("source state:\n routes   %q\n problems %q\nwant\n routes   %q\n problems %q", got.routes, got.problems, want.routes, want.problems)
	}
}

func (h *harness) waitForChange(t *testing.T, before int64) {
	t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return h.changes.Load() > before, nil
	})
	if err != nil {
		t.Fatal("onChange was not called")
	}
}

func fixtureNodes() []*corev1.Node {
	return []*corev1.Node{
		node("node-a", "2026-01-01T00:00:00Z", "10.244.0.0/24", "fd00:10:244::/64"),
		node("node-b", "2026-01-01T00:00:01Z", "10.244.1.0/24"),
		node("node-c", "2026-01-01T00:00:02Z", "10.244.2.0/24"),
		node("node-d", "2026-01-01T00:00:03Z", "10.244.3.0/24"),
		node("node-e", "2026-01-01T00:00:04Z", "10.244.10.0/24"),
	}
}

func TestNodeSource(t *testing.T) {
	legacy := node("legacy", "2026-01-01T00:00:05Z")
	legacy.Spec.PodCIDR = "10.244.5.0/24"
	unmasked := node("unmasked", "2026-01-01T00:00:06Z", "10.244.6.7/24")
	nodes := []*corev1.Node{
		node("dual", "2026-01-01T00:00:00Z", "10.244.0.0/24", "fd00:10:244::/64"),
		legacy,
		unmasked,
		node("no-cidr-yet", "2026-01-01T00:00:07Z"),
		node("bad-cidr", "2026-01-01T00:00:08Z", "10.244.300.0/24"),
		node("outside", "2026-01-01T00:00:09Z", "10.99.0.0/24", "fd00:10:244:7::/64"),
		// Claims a superset of dual's IPv4 CIDR, later: withheld.
		node("overlap-late", "2026-01-02T00:00:00Z", "10.244.0.0/23"),
		// Same instant as overlap-late, but overlap-late's own claim was
		// withheld, so it does not block this one.
		node("overlap-later", "2026-01-03T00:00:00Z", "10.244.1.0/24"),
	}
	h := newHarness(t, ModeNodes, nodes)
	h.eventually(t, state{
		routes: []string{
			"dual 10.244.0.0/24",
			"dual fd00:10:244::/64",
			"legacy 10.244.5.0/24",
			"outside fd00:10:244:7::/64",
			"overlap-later 10.244.1.0/24",
			"unmasked 10.244.6.0/24",
		},
		problems: []string{
			"Node/bad-cidr InvalidCIDR",
			"Node/outside OutsideClusterCIDR",
			"Node/overlap-late OverlappingDestination",
		},
	})

	// A podCIDR being assigned is a relevant change.
	before := h.changes.Load()
	n := node("no-cidr-yet", "2026-01-01T00:00:07Z", "10.244.7.0/24", "fd00:10:244:8::/64")
	if _, err := h.kube.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForChange(t, before)
	// Deleting the earlier claimant hands the destination to the next one.
	before = h.changes.Load()
	if err := h.kube.CoreV1().Nodes().Delete(h.ctx, "dual", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForChange(t, before)
	h.eventually(t, state{
		routes: []string{
			"legacy 10.244.5.0/24",
			"no-cidr-yet 10.244.7.0/24",
			"no-cidr-yet fd00:10:244:8::/64",
			"outside fd00:10:244:7::/64",
			"overlap-late 10.244.0.0/23",
			"unmasked 10.244.6.0/24",
		},
		problems: []string{
			"Node/bad-cidr InvalidCIDR",
			"Node/outside OutsideClusterCIDR",
			"Node/overlap-later OverlappingDestination",
		},
	})
}

func TestOverlapMessageNamesHolder(t *testing.T) {
	claims, _ := nodeClaims([]*corev1.Node{
		node("b", "2026-01-01T00:00:00Z", "10.244.1.0/24"),
		node("a", "2026-01-01T00:00:00Z", "10.244.1.0/25"),
	}, testClusterCIDRs)
	routes, problems := resolve(claims)
	// Same creation time: the name decides, so "a" holds the destination.
	if got := render(routes, problems); !slices.Equal(got.routes, []string{"a 10.244.1.0/25"}) {
		t.Fatalf("routes = %q", got.routes)
	}
	if len(problems) != 1 || problems[0].Node != "b" ||
		!strings.Contains(problems[0].Message, "10.244.1.0/24 overlaps 10.244.1.0/25 of node a (from Node/a)") {
		t.Fatalf("problems = %+v", problems)
	}
}

func TestSpiderpoolSource(t *testing.T) {
	h := newHarness(t, ModeSpiderpool, fixtureNodes(), loadPools(t)...)
	h.eventually(t, state{
		routes: []string{
			"node-a 10.244.0.0/24",
			"node-a fd00:10:244::/120",
			"node-b 10.244.1.0/24",
			"node-c 10.244.2.1/32",
			"node-c 10.244.2.2/31",
			"node-c 10.244.2.4/30",
			"node-c 10.244.2.8/31",
			"node-c 10.244.2.10/32",
			"node-c 10.244.3.5/32",
			"node-d 10.244.3.100/30",
			"node-d 10.244.3.104/30",
			"node-d 10.244.3.108/31",
			"node-d 10.244.3.110/32",
			"node-e 10.244.10.0/25",
		},
		problems: []string{
			"SpiderIPPool/pool-broken InvalidPool",
			"SpiderIPPool/pool-cluster-wide PoolNotPinned",
			"SpiderIPPool/pool-e-dup OverlappingDestination",
			"SpiderIPPool/pool-e-wide OutsideClusterCIDR",
			"SpiderIPPool/pool-ghost PoolNodeNotFound",
			"SpiderIPPool/pool-shared PoolNotPinned",
		},
	})

	pools := h.dyn.Resource(SpiderIPPoolGVR)
	// Deleting the duplicate lets pool-d aggregate into its covering prefix
	// and removes the overlap problem.
	before := h.changes.Load()
	if err := pools.Delete(h.ctx, "pool-e-dup", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForChange(t, before)
	// The drained pool gets an allocation again: it must be routed.
	retired, err := pools.Get(h.ctx, "pool-b-retired", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(retired.Object, int64(1), "status", "allocatedIPCount"); err != nil {
		t.Fatal(err)
	}
	before = h.changes.Load()
	if _, err := pools.Update(h.ctx, retired, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForChange(t, before)
	// The pool of a missing node becomes routable once the node joins.
	before = h.changes.Load()
	if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, node("node-gone", "2026-01-05T00:00:00Z"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitForChange(t, before)
	h.eventually(t, state{
		routes: []string{
			"node-a 10.244.0.0/24",
			"node-a fd00:10:244::/120",
			"node-b 10.244.1.0/24",
			"node-b 10.244.9.0/24",
			"node-c 10.244.2.1/32",
			"node-c 10.244.2.2/31",
			"node-c 10.244.2.4/30",
			"node-c 10.244.2.8/31",
			"node-c 10.244.2.10/32",
			"node-c 10.244.3.5/32",
			"node-d 10.244.3.96/28",
			"node-e 10.244.10.0/25",
			"node-gone 10.244.22.0/24",
		},
		problems: []string{
			"SpiderIPPool/pool-broken InvalidPool",
			"SpiderIPPool/pool-cluster-wide PoolNotPinned",
			"SpiderIPPool/pool-e-wide OutsideClusterCIDR",
			"SpiderIPPool/pool-shared PoolNotPinned",
		},
	})
}

// establishedCRD returns the real SpiderIPPool CRD as the API server serves
// it once established.
func establishedCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	crd := loadCRD(t)
	if err := unstructured.SetNestedSlice(crd.Object, []any{
		map[string]any{"type": "NamesAccepted", "status": "True"},
		map[string]any{"type": "Established", "status": "True"},
	}, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	return crd
}

func TestAutoSource(t *testing.T) {
	nodeRoutes := []string{
		"node-a 10.244.0.0/24",
		"node-a fd00:10:244::/64",
		"node-b 10.244.1.0/24",
		"node-c 10.244.2.0/24",
		"node-d 10.244.3.0/24",
		"node-e 10.244.10.0/24",
	}
	poolProblems := []string{
		"SpiderIPPool/pool-broken InvalidPool",
		"SpiderIPPool/pool-c PoolOutsidePodCIDR",
		"SpiderIPPool/pool-cluster-wide PoolNotPinned",
		"SpiderIPPool/pool-e-dup PoolOutsidePodCIDR",
		"SpiderIPPool/pool-e-wide PoolOutsidePodCIDR",
		"SpiderIPPool/pool-ghost PoolNodeNotFound",
		"SpiderIPPool/pool-shared PoolNotPinned",
	}

	t.Run("CRD installed", func(t *testing.T) {
		h := newHarness(t, ModeAuto, fixtureNodes(), append(loadPools(t), establishedCRD(t))...)
		h.eventually(t, state{routes: nodeRoutes, problems: poolProblems})
		_, problems, err := h.src.Routes(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if p.Object == "SpiderIPPool/pool-c" &&
				(p.Node != "node-c" || !strings.Contains(p.Message, "hands out 10.244.3.5, outside the podCIDRs of node node-c (10.244.2.0/24)")) {
				t.Errorf("pool-c problem = %+v", p)
			}
		}

		// Removing the CRD stops the checks; the node routes stay.
		before := h.changes.Load()
		if err := h.dyn.Resource(crdGVR).Delete(h.ctx, SpiderIPPoolCRDName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitForChange(t, before)
		h.eventually(t, state{routes: nodeRoutes})
	})

	t.Run("CRD installed later", func(t *testing.T) {
		h := newHarness(t, ModeAuto, fixtureNodes(), loadPools(t)...)
		h.eventually(t, state{routes: nodeRoutes})
		before := h.changes.Load()
		if _, err := h.dyn.Resource(crdGVR).Create(h.ctx, establishedCRD(t), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitForChange(t, before)
		h.eventually(t, state{routes: nodeRoutes, problems: poolProblems})
	})

	t.Run("CRDs may not be read", func(t *testing.T) {
		h := newHarnessWith(t, ModeAuto, fixtureNodes(), func(dyn *dynamicfake.FakeDynamicClient) {
			dyn.PrependReactor("list", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, "", errors.New("RBAC"))
			})
		}, append(loadPools(t), establishedCRD(t))...)
		h.eventually(t, state{routes: nodeRoutes})
	})

	t.Run("pools cannot be listed", func(t *testing.T) {
		// The advisory check must not gate routing: the caches count as
		// synced, the routes publish, the failed check is a problem.
		h := newHarnessWith(t, ModeAuto, fixtureNodes(), func(dyn *dynamicfake.FakeDynamicClient) {
			dyn.PrependReactor("list", "spiderippools", func(clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
			})
		}, append(loadPools(t), establishedCRD(t))...)
		h.eventually(t, state{routes: nodeRoutes, problems: []string{"CustomResourceDefinition/" + SpiderIPPoolCRDName + " " + ReasonPoolCheckFailed}})
	})

	t.Run("CRD not yet established", func(t *testing.T) {
		h := newHarness(t, ModeAuto, fixtureNodes(), append(loadPools(t), loadCRD(t))...)
		h.eventually(t, state{routes: nodeRoutes})
		if h.src.pools.running() {
			t.Fatal("pools are watched although the CRD is not established")
		}
	})
}

func TestRoutesBeforeSync(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	factory := informers.NewSharedInformerFactory(kubefake.NewClientset(), 0)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), testListKinds())
	for _, mode := range Modes {
		src, err := New(mode, factory.Core().V1().Nodes(), dyn, Options{ClusterCIDRs: testClusterCIDRs, Calico: allCalico(CalicoV1)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing started: an empty cache must not read as "no routes".
		if _, _, err := src.Routes(ctx); err == nil || !strings.Contains(err.Error(), ErrNotSynced.Error()) {
			t.Errorf("%s: Routes before sync = %v, want ErrNotSynced", mode, err)
		}
		if src.HasSynced() {
			t.Errorf("%s: HasSynced before start", mode)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	factory := informers.NewSharedInformerFactory(kubefake.NewClientset(), 0)
	nodes := factory.Core().V1().Nodes()
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	opts := Options{ClusterCIDRs: testClusterCIDRs}
	for name, f := range map[string]func() (*Source, error){
		"no cluster CIDR":           func() (*Source, error) { return New(ModeNodes, nodes, nil, Options{}, nil) },
		"spiderpool without client": func() (*Source, error) { return New(ModeSpiderpool, nodes, nil, opts, nil) },
		"auto without client":       func() (*Source, error) { return New(ModeAuto, nodes, nil, opts, nil) },
		"unknown mode":              func() (*Source, error) { return New("cilium", nodes, dyn, opts, nil) },
		"calico without Calico":     func() (*Source, error) { return New(ModeCalico, nodes, dyn, opts, nil) },
		"calico without client": func() (*Source, error) {
			return New(ModeCalico, nodes, nil, Options{ClusterCIDRs: testClusterCIDRs, Calico: allCalico(CalicoV1)}, nil)
		},
		"spiderpool without informer": func() (*Source, error) { return New(ModeSpiderpool, nil, dyn, opts, nil) },
	} {
		if src, err := f(); err == nil {
			t.Errorf("%s: New = %v, want an error", name, src)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(string(m)); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if _, err := ParseMode("host-local"); err == nil {
		t.Error("ParseMode(host-local) succeeded")
	}
}

func TestPoolRelevantChange(t *testing.T) {
	base := func() *unstructured.Unstructured {
		u := loadPools(t)[0].DeepCopy()
		return u
	}
	tests := []struct {
		name   string
		mutate func(u *unstructured.Unstructured)
		want   bool
	}{
		{name: "no change", mutate: func(*unstructured.Unstructured) {}, want: false},
		{name: "allocation churn", mutate: func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, int64(40), "status", "allocatedIPCount")
			_ = unstructured.SetNestedField(u.Object, `{"10.244.0.2":{}}`, "status", "allocatedIPs")
		}, want: false},
		{name: "ips changed", mutate: func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedStringSlice(u.Object, []string{"10.244.0.1-10.244.0.100"}, "spec", "ips")
		}, want: true},
		{name: "node changed", mutate: func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedStringSlice(u.Object, []string{"node-b"}, "spec", "nodeName")
		}, want: true},
		{name: "disabled while in use", mutate: func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, true, "spec", "disable")
		}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, n := base(), base()
			tt.mutate(n)
			if got := poolRelevantChange(o, n); got != tt.want {
				t.Errorf("poolRelevantChange = %v, want %v", got, tt.want)
			}
		})
	}

	// A disabled pool draining to zero allocations is relevant.
	o, n := base(), base()
	_ = unstructured.SetNestedField(o.Object, true, "spec", "disable")
	_ = unstructured.SetNestedField(n.Object, true, "spec", "disable")
	_ = unstructured.SetNestedField(n.Object, int64(0), "status", "allocatedIPCount")
	if !poolRelevantChange(o, n) {
		t.Error("a disabled pool draining to zero allocations is not a relevant change")
	}
}

func TestTrimPool(t *testing.T) {
	u := loadPools(t)[0].DeepCopy()
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "spiderpool-controller"}})
	obj, err := trimPool(u)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*unstructured.Unstructured)
	if _, found, _ := unstructured.NestedFieldNoCopy(got.Object, "status", "allocatedIPs"); found {
		t.Error("status.allocatedIPs kept in the cache")
	}
	if len(got.GetManagedFields()) != 0 {
		t.Error("managed fields kept in the cache")
	}
	if n, _, _ := unstructured.NestedInt64(got.Object, "status", "allocatedIPCount"); n != 12 {
		t.Errorf("status.allocatedIPCount = %d, want 12 kept", n)
	}
}

func TestSpiderIPPoolServed(t *testing.T) {
	client := kubefake.NewClientset()
	fd := client.Discovery().(*fakediscovery.FakeDiscovery)
	if ok, err := SpiderIPPoolServed(fd); err != nil || ok {
		t.Errorf("without the CRD: SpiderIPPoolServed = %v, %v; want false, nil", ok, err)
	}
	fd.Resources = []*metav1.APIResourceList{{
		GroupVersion: SpiderIPPoolGVR.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: "spiderippools", Kind: "SpiderIPPool"}, {Name: "spiderippools/status"}},
	}}
	if ok, err := SpiderIPPoolServed(fd); err != nil || !ok {
		t.Errorf("with the CRD: SpiderIPPoolServed = %v, %v; want true, nil", ok, err)
	}
	fd.Resources = []*metav1.APIResourceList{{
		GroupVersion: SpiderIPPoolGVR.GroupVersion().String(),
		APIResources: []metav1.APIResource{{Name: "spidersubnets", Kind: "SpiderSubnet"}},
	}}
	if ok, err := SpiderIPPoolServed(fd); err != nil || ok {
		t.Errorf("group without pools: SpiderIPPoolServed = %v, %v; want false, nil", ok, err)
	}
}
