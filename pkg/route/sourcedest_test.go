package route

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeENIs holds each instance's primary ENI check; instances it does not
// know have none.
type fakeENIs struct {
	mu         sync.Mutex
	on         map[string]bool
	readErr    error
	disableErr map[string]error
	reads      int
	asked      [][]string
	disabled   []string
}

func newFakeENIs(on map[string]bool) *fakeENIs {
	return &fakeENIs{on: maps.Clone(on), disableErr: map[string]error{}}
}

func (f *fakeENIs) SourceDestChecks(_ context.Context, ids []string) (map[string]ENICheck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	f.asked = append(f.asked, slices.Clone(ids))
	if f.readErr != nil {
		return nil, f.readErr
	}
	out := map[string]ENICheck{}
	for _, id := range ids {
		if on, ok := f.on[id]; ok {
			out[id] = ENICheck{Instance: id, ENI: "eni-" + id, On: on}
		}
	}
	return out, nil
}

func (f *fakeENIs) DisableSourceDestCheck(_ context.Context, checks []ENICheck) map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]error{}
	for _, ck := range checks {
		if err := f.disableErr[ck.Instance]; err != nil {
			out[ck.Instance] = err
			continue
		}
		f.on[ck.Instance] = false
		f.disabled = append(f.disabled, ck.Instance)
		out[ck.Instance] = nil
	}
	return out
}

func (f *fakeENIs) set(instance string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on[instance] = on
}

func (f *fakeENIs) isOn(instance string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on[instance]
}

func (f *fakeENIs) disabledCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.disabled)
}

func withENIs(e ENIs, mode SourceDestCheckMode) option {
	return func(h *harness) {
		h.enis = e
		h.cfg.SourceDestCheck = mode
	}
}

func (h *harness) conditionIs(node string, status corev1.ConditionStatus) bool {
	c := h.condition(node)
	return c != nil && c.Status == status
}

func (h *harness) problems(reason string) float64 {
	return testutil.ToFloat64(h.metrics.Problems.WithLabelValues(reason))
}

const (
	nodeA = "cn-chengdu.i-a"
	nodeB = "cn-chengdu.i-b"
)

func twoNodes() []*corev1.Node {
	return []*corev1.Node{testNode("i-a", "10.0.1.0/24"), testNode("i-b", "10.0.2.0/24")}
}

func TestSourceDestCheckDisableTurnsItOff(t *testing.T) {
	enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": false})
	h := newHarness(t, twoNodes(), withENIs(enis, SourceDestCheckDisable), withConfig(func(c *Config) { c.ResyncPeriod = 300 * time.Millisecond }))
	h.start()
	h.eventually("both nodes published", func() bool {
		return h.conditionIs(nodeA, corev1.ConditionFalse) && h.conditionIs(nodeB, corev1.ConditionFalse)
	})
	if enis.isOn("i-a") {
		t.Fatal("i-a's check is still on")
	}
	h.eventually("event", func() bool { return h.hasEvent(nodeA, EventSourceDestCheckDisabled, "eni-i-a") })
	if h.hasEvent(nodeB, EventSourceDestCheckDisabled, "") {
		t.Error("i-b's check was off, yet an event says it was turned off")
	}
	h.eventually("metrics in sync", func() bool {
		return h.entries("vtb-1", EntriesPresent) == 2 && h.entries("vtb-1", EntriesSourceDestCheck) == 0
	})

	// Turned back on out of band: found at the next resync, turned off again.
	enis.set("i-a", true)
	h.eventually("turned off again", func() bool { return !enis.isOn("i-a") && enis.disabledCount() == 2 })
	h.settledPass()
	if !h.conditionIs(nodeA, corev1.ConditionFalse) {
		t.Fatal("node lost its condition although the check was turned off in the same pass")
	}
}

func TestSourceDestCheckReportKeepsTheNodeUnpublished(t *testing.T) {
	enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": false})
	h := newHarness(t, twoNodes(), withENIs(enis, SourceDestCheckReport), withConfig(func(c *Config) { c.ResyncPeriod = 300 * time.Millisecond }))
	h.start()
	h.eventually("i-b published, i-a reported", func() bool {
		return h.conditionIs(nodeB, corev1.ConditionFalse) && h.conditionIs(nodeA, corev1.ConditionTrue) &&
			h.entries("vtb-1", EntriesSourceDestCheck) == 1 && h.entries("vtb-1", EntriesPresent) == 1 &&
			h.problems(ReasonSourceDestCheckOn) == 1
	})
	h.eventually("warning event", func() bool {
		return h.hasEvent(nodeA, EventRouteProblem, "ENI eni-i-a of instance i-a has the source/destination check on")
	})
	if enis.disabledCount() != 0 {
		t.Fatal("report mode turned a check off")
	}
	if !h.has(entry("vtb-1", "10.0.1.0/24", "i-a"), entry("vtb-1", "10.0.2.0/24", "i-b")) {
		t.Fatal("the route itself must still be written")
	}

	// The operator turns it off: published at the next pass.
	enis.set("i-a", false)
	h.settledPass()
	h.eventually("i-a published", func() bool {
		return h.conditionIs(nodeA, corev1.ConditionFalse) && h.entries("vtb-1", EntriesSourceDestCheck) == 0
	})
	// Turned back on out of band: detected at the next resync.
	enis.set("i-a", true)
	h.settledPass()
	h.eventually("detected again", func() bool {
		return h.conditionIs(nodeA, corev1.ConditionTrue) && h.entries("vtb-1", EntriesSourceDestCheck) == 1
	})
}

// Between resyncs a pass asks only about the checks never read or last read
// on; a resync pass asks about every one.
func TestSourceDestCheckReadsCheaplyBetweenResyncs(t *testing.T) {
	enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": false, "i-c": false})
	h := newHarness(t, append(twoNodes(), testNode("i-c", "10.0.3.0/24")), withENIs(enis, SourceDestCheckReport))
	h.start()
	h.eventually("published", func() bool { return h.conditionIs(nodeB, corev1.ConditionFalse) })
	h.eventually("a second read", func() bool {
		h.ctrl.Enqueue()
		enis.mu.Lock()
		defer enis.mu.Unlock()
		return len(enis.asked) >= 2
	})
	enis.mu.Lock()
	first, last := enis.asked[0], enis.asked[len(enis.asked)-1]
	enis.mu.Unlock()
	if !slices.Equal(first, []string{"i-a", "i-b", "i-c"}) {
		t.Fatalf("first pass asked about %v, want every instance", first)
	}
	if !slices.Equal(last, []string{"i-a"}) {
		t.Fatalf("a pass between resyncs asked about %v, want only i-a (on); all: %v", last, enis.asked)
	}
}

func TestSourceDestCheckIgnoreReadsNothing(t *testing.T) {
	enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": true})
	h := newHarness(t, twoNodes(), withENIs(enis, SourceDestCheckIgnore))
	h.start()
	h.eventually("published", func() bool {
		return h.conditionIs(nodeA, corev1.ConditionFalse) && h.conditionIs(nodeB, corev1.ConditionFalse) && h.entries("vtb-1", EntriesPresent) == 2
	})
	enis.mu.Lock()
	defer enis.mu.Unlock()
	if enis.reads != 0 || len(enis.disabled) != 0 {
		t.Fatalf("ignore mode read %d times and disabled %v", enis.reads, enis.disabled)
	}
}

func TestSourceDestCheckFailures(t *testing.T) {
	t.Run("turning it off fails", func(t *testing.T) {
		enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": false})
		enis.disableErr["i-a"] = &apiError{class: ErrUnauthorized, code: "Forbidden.RAM"}
		h := newHarness(t, twoNodes(), withENIs(enis, SourceDestCheckDisable))
		h.start()
		h.eventually("i-a not published, problem says why", func() bool {
			return h.conditionIs(nodeA, corev1.ConditionTrue) && h.conditionIs(nodeB, corev1.ConditionFalse) &&
				h.hasEvent(nodeA, EventRouteProblem, "turning it off failed") && h.hasEvent(nodeA, EventRouteProblem, "Forbidden.RAM")
		})
		if got := testutil.ToFloat64(h.metrics.Reconciles.WithLabelValues(ResultPartial)); got == 0 {
			t.Fatal("a failed disable did not fail the pass")
		}
	})
	t.Run("reading fails: the last value read is kept, never-read counts as on", func(t *testing.T) {
		enis := newFakeENIs(map[string]bool{"i-a": false})
		h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withENIs(enis, SourceDestCheckReport))
		h.start()
		h.eventually("i-a published", func() bool { return h.conditionIs(nodeA, corev1.ConditionFalse) })
		enis.mu.Lock()
		enis.readErr = &apiError{class: ErrThrottled, code: "Throttling.User"}
		enis.mu.Unlock()
		if _, err := h.kube.CoreV1().Nodes().Create(h.ctx, testNode("i-b", "10.0.2.0/24"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.eventually("i-b unknown, i-a kept", func() bool {
			return h.entries("vtb-1", EntriesSourceDestCheck) == 1 && h.entries("vtb-1", EntriesPresent) == 1 &&
				h.hasEvent(nodeB, EventRouteProblem, "unknown")
		})
		if !h.conditionIs(nodeA, corev1.ConditionFalse) {
			t.Fatal("a failed read unpublished a node whose check was read off")
		}
		if h.conditionIs(nodeB, corev1.ConditionFalse) {
			t.Fatal("a node whose check was never read was published")
		}
	})
	t.Run("dry run never writes", func(t *testing.T) {
		enis := newFakeENIs(map[string]bool{"i-a": true})
		h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, withENIs(enis, SourceDestCheckDisable),
			withConfig(func(c *Config) { c.DryRun = true }))
		h.start()
		h.settledPass()
		if enis.disabledCount() != 0 || !enis.isOn("i-a") {
			t.Fatal("a dry run turned a check off")
		}
	})
}

func TestSourceDestCheckAudit(t *testing.T) {
	enis := newFakeENIs(map[string]bool{"i-a": true, "i-b": false})
	h := newHarness(t, twoNodes(), withENIs(enis, SourceDestCheckDisable))
	for _, r := range []Route{
		{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.1.0/24"), NextHop: "i-a", Node: nodeA, Owner: testCluster},
		{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.2.0/24"), NextHop: "i-b", Node: nodeB, Owner: testCluster},
	} {
		h.cloud.put(r)
	}
	h.startInformers()
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if enis.disabledCount() != 0 {
		t.Fatal("audit turned a check off")
	}
	if rep.InSync() {
		t.Fatal("audit says in sync while i-a's ENI drops the traffic")
	}
	states := map[string]RouteState{}
	for _, rr := range rep.Routes {
		states[rr.Node] = rr.State
	}
	if states[nodeA] != StateSourceDestCheck || states[nodeB] != StateInSync {
		t.Fatalf("route states = %v", states)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"SOURCE/DEST CHECK", "eni-i-a", "source-dest-check", ReasonSourceDestCheckOn, "1 source-dest-check"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit table lacks %q:\n%s", want, out)
		}
	}
}

func TestSourceDestCheckConfig(t *testing.T) {
	for _, s := range []string{"disable", "Report", " ignore "} {
		if _, err := ParseSourceDestCheckMode(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseSourceDestCheckMode("off"); err == nil {
		t.Error("--source-dest-check=off accepted")
	}
	o := NewOptions()
	o.ClusterID, o.ClusterCIDRs = "c1", []string{"10.0.0.0/8"}
	cfg, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SourceDestCheck != SourceDestCheckDisable {
		t.Fatalf("default mode %q, want disable", cfg.SourceDestCheck)
	}
	h := newHarness(t, nil)
	cfg = h.cfg
	cfg.SourceDestCheck = SourceDestCheckReport
	_, err = New(cfg, Deps{Kube: h.kube, Nodes: h.factory.Core().V1().Nodes(), Source: h.source, Table: h.cloud, Instances: h.inst})
	if !errors.Is(err, errNoENIs) {
		t.Fatalf("report mode without ENI access: %v", err)
	}
}
