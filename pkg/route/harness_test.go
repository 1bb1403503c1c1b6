package route

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"
)

// harness runs a controller against the fake clientset, the in-memory
// cloud and instances.
type harness struct {
	t       *testing.T
	ctx     context.Context
	kube    *fake.Clientset
	factory informers.SharedInformerFactory
	cloud   *fakeCloud
	inst    *fakeInstances
	enis    ENIs
	source  Source
	reg     *prometheus.Registry
	metrics *Metrics
	cfg     Config
	ctrl    *Controller
	cancel  context.CancelFunc
	done    chan error
	clock   clock.WithTicker
	// informers run for the whole test, across controller restarts.
	informersStarted bool
}

type option func(*harness)

func withConfig(f func(*Config)) option   { return func(h *harness) { f(&h.cfg) } }
func withSource(s Source) option          { return func(h *harness) { h.source = s } }
func withClock(c clock.WithTicker) option { return func(h *harness) { h.clock = c } }
func withTables(ids ...string) option {
	return func(h *harness) { h.cloud = newFakeCloud(testCluster, ids...) }
}

func newHarness(t *testing.T, nodes []*corev1.Node, opts ...option) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	h := &harness{
		t:     t,
		ctx:   ctx,
		cloud: newFakeCloud(testCluster, "vtb-1"),
		inst:  newFakeInstances(),
		cfg: Config{
			Policy:           testPolicy(),
			ResyncPeriod:     time.Hour, // tests trigger passes explicitly
			Coalesce:         10 * time.Millisecond,
			SetNodeCondition: true,
			MinRetryDelay:    5 * time.Millisecond,
			MaxRetryDelay:    50 * time.Millisecond,
		},
	}
	h.kube = fake.NewClientset()
	for _, n := range nodes {
		if _, err := h.kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.factory = informers.NewSharedInformerFactory(h.kube, 0)
	for _, o := range opts {
		o(h)
	}
	if h.source == nil {
		h.source = nodeSource{nodes: h.factory.Core().V1().Nodes().Lister()}
	}
	h.reg = prometheus.NewRegistry()
	m, err := NewMetrics(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	h.metrics = m
	h.ctrl = h.newController()
	return h
}

func (h *harness) newController() *Controller {
	h.t.Helper()
	c, err := New(h.cfg, Deps{
		Kube: h.kube, Nodes: h.factory.Core().V1().Nodes(), Source: h.source,
		Table: h.cloud, Instances: h.inst, ENIs: h.enis, Metrics: h.metrics, Clock: h.clock,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// start runs the controller until the test ends.
func (h *harness) start() {
	h.t.Helper()
	h.startInformers()
	ctx, cancel := context.WithCancel(h.ctx)
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.ctrl.Run(ctx) }()
}

// startInformers starts the shared informers once, for the whole test.
func (h *harness) startInformers() {
	if !h.informersStarted {
		h.informersStarted = true
		ictx, icancel := context.WithCancel(h.ctx)
		h.factory.Start(ictx.Done())
		h.t.Cleanup(func() {
			h.stop()
			icancel()
			h.factory.Shutdown()
		})
	}
}

// stop cancels the controller and waits for Run to return.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after cancellation")
	}
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 5*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		h.t.Fatalf("timed out waiting for %s; cloud has %v", what, h.cloud.snapshot())
	}
}

// passes returns the number of finished passes.
func (h *harness) passes() float64 {
	return testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultSuccess)) +
		testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultPartial)) +
		testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultError))
}

// settledPass triggers a pass and waits until one more pass than before has
// finished, so that assertions about "nothing happened" are meaningful.
func (h *harness) settledPass() {
	h.t.Helper()
	before := h.passes()
	h.ctrl.Enqueue()
	h.eventually("a pass", func() bool { return h.passes() > before })
}

// observations returns the number of observations of a histogram.
func observations(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

func (h *harness) entries(table, state string) float64 {
	return testutil.ToFloat64(h.metrics.RouteEntries.WithLabelValues(table, state))
}

func (h *harness) node(name string) *corev1.Node {
	h.t.Helper()
	n, err := h.kube.CoreV1().Nodes().Get(h.ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) updateNode(name string, f func(n *corev1.Node)) {
	h.t.Helper()
	n := h.node(name).DeepCopy()
	f(n)
	if _, err := h.kube.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) condition(name string) *corev1.NodeCondition {
	return networkUnavailable(h.node(name))
}

// events returns the events recorded on the node as "reason: message".
func (h *harness) events(node string) []string {
	list, err := h.kube.CoreV1().Events("").List(h.ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == node {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	slices.Sort(out)
	return out
}

func (h *harness) hasEvent(node, reason, contains string) bool {
	for _, e := range h.events(node) {
		if strings.HasPrefix(e, reason+": ") && strings.Contains(e, contains) {
			return true
		}
	}
	return false
}

// has reports whether the cloud holds exactly these entries (as
// "table dst -> hop (owner/node)").
func (h *harness) has(want ...string) bool {
	slices.Sort(want)
	return slices.Equal(h.cloud.snapshot(), want)
}

func (h *harness) patches() int {
	n := 0
	for _, a := range h.kube.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

// testNode builds a node named region.instance with the given pod CIDRs.
func testNode(instance string, cidrs ...string) *corev1.Node {
	name := "cn-chengdu." + instance
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}},
		Spec:       corev1.NodeSpec{ProviderID: "alicloud://" + name, PodCIDRs: cidrs, PodCIDR: first(cidrs)},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.10"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// entry renders an owned entry as in snapshot.
func entry(table, dst, instance string) string {
	return fmt.Sprintf("%s %s -> %s (%s/cn-chengdu.%s)", table, netip.MustParsePrefix(dst), instance, testCluster, instance)
}
