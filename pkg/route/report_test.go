package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestAuditReportsDriftWithoutWriting(t *testing.T) {
	noInstance := testNode("i-e", "10.0.5.0/24")
	noInstance.Spec.ProviderID = ""
	h := newHarness(t, []*corev1.Node{
		testNode("i-a", "10.0.1.0/24"), // in sync, instance stopped
		testNode("i-b", "10.0.2.0/24"), // missing
		testNode("i-c", "10.0.3.0/24"), // wrong next hop
		testNode("i-d", "10.0.4.0/24"), // conflict
		noInstance,                     // problem
		testNode("i-f", "10.0.6.0/24"), // pending
	}, withConfig(func(c *Config) { c.Policy.MaxDeleteRatio = 1 }))
	mine := func(dst, hop, node, status string) Route {
		return Route{Table: "vtb-1", Destination: netip.MustParsePrefix(dst), NextHop: hop, Owner: testCluster, Node: node, Status: status}
	}
	h.cloud.put(mine("10.0.1.0/24", "i-a", "cn-chengdu.i-a", ""))
	h.cloud.put(mine("10.0.3.0/24", "i-old", "cn-chengdu.i-c", ""))
	h.cloud.put(Route{Table: "vtb-1", Destination: netip.MustParsePrefix("10.0.4.0/24"), NextHop: "i-user"})
	h.cloud.put(mine("10.0.6.0/24", "i-f", "cn-chengdu.i-f", StatusPending))
	h.cloud.put(mine("10.0.9.0/24", "i-z", "cn-chengdu.i-z", ""))
	h.inst.do(func(f *fakeInstances) { f.stopped["i-a"] = true })
	h.startInformers()

	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]RouteState{}
	for _, rr := range rep.Routes {
		states[rr.Node] = rr.State
	}
	want := map[string]RouteState{
		"cn-chengdu.i-a": StateInSync, "cn-chengdu.i-b": StateMissing, "cn-chengdu.i-c": StateWrongNextHop,
		"cn-chengdu.i-d": StateConflict, "cn-chengdu.i-f": StatePending,
	}
	if !reflect.DeepEqual(states, want) {
		t.Errorf("route states = %v, want %v", states, want)
	}
	if rep.InSync() {
		t.Error("drifted report claims to be in sync")
	}
	var unexpected []string
	for _, u := range rep.Unexpected {
		unexpected = append(unexpected, u.Destination.String()+">"+u.NextHop)
	}
	if got := strings.Join(unexpected, ","); got != "10.0.3.0/24>i-old,10.0.9.0/24>i-z" {
		t.Errorf("unexpected = %s", got)
	}
	if len(rep.Conflicts) != 1 || rep.Conflicts[0].Existing.NextHop != "i-user" {
		t.Errorf("conflicts = %+v", rep.Conflicts)
	}
	if len(rep.Blackholes) != 1 || rep.Blackholes[0].Route.NextHop != "i-a" || rep.Blackholes[0].InstanceStatus != InstanceStopped {
		t.Errorf("blackholes = %+v", rep.Blackholes)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Reason != ReasonNoInstance || rep.Problems[0].Object != "Node/cn-chengdu.i-e" {
		t.Errorf("problems = %+v", rep.Problems)
	}
	if len(rep.Tables) != 1 || rep.Tables[0].Used != 5 || *rep.Tables[0].Headroom != 195 {
		t.Errorf("tables = %+v", rep.Tables)
	}

	// Audit wrote nothing, patched nothing.
	h.cloud.do(func(c *fakeCloud) {
		if c.writes != 0 {
			t.Errorf("audit wrote %d entries", c.writes)
		}
	})
	if n := h.patches(); n != 0 {
		t.Errorf("audit patched %d nodes", n)
	}

	// Renderers.
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{
		"ROUTE TABLE", "vtb-1", "wrong-next-hop", "UNEXPECTED OWNED ENTRY", "CONFLICT", "i-user",
		"BLACKHOLE", "Stopped", "PROBLEM", "NoInstance",
		"drift: 1 in-sync, 1 missing, 1 wrong-next-hop, 1 pending, 1 conflict, 2 unexpected, 1 problem(s), 1 blackhole(s)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("table output lacks %q:\n%s", s, out)
		}
	}

	buf.Reset()
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var fromJSON Report
	if err := json.Unmarshal(buf.Bytes(), &fromJSON); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(&fromJSON, rep) {
		t.Errorf("JSON round trip differs:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"state": "wrong-next-hop"`) || !strings.Contains(buf.String(), `"destination": "10.0.3.0/24"`) {
		t.Errorf("JSON lacks expected fields:\n%s", buf.String())
	}

	buf.Reset()
	if err := rep.WriteYAML(&buf); err != nil {
		t.Fatal(err)
	}
	var fromYAML Report
	if err := yaml.Unmarshal(buf.Bytes(), &fromYAML); err != nil {
		t.Fatalf("YAML output does not parse: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(&fromYAML, rep) {
		t.Errorf("YAML round trip differs:\n%s", buf.String())
	}
}

func TestAuditInSyncAfterConvergence(t *testing.T) {
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24", "fd00:10:0:1::/64")}, withTables("vtb-1", "vtb-2"))
	h.start()
	h.eventually("routes", func() bool { return len(h.cloud.snapshot()) == 4 })
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.InSync() || rep.Summary() != "in sync: 4 in-sync" {
		t.Errorf("report after convergence: %s", rep.Summary())
	}
}

func TestAuditFailsOnUnreadableSource(t *testing.T) {
	src := &staticSource{err: errFake}
	h := newHarness(t, nil, withSource(src))
	h.startInformers()
	if _, err := h.ctrl.Audit(h.ctx); err == nil || !strings.Contains(err.Error(), "reading desired routes") {
		t.Errorf("Audit error = %v", err)
	}
}

var errFake = &apiError{ErrUnauthorized, "InvalidAccessKeyId.NotFound"}

func TestErrorClassAndCode(t *testing.T) {
	err := errorsJoinWrap(&apiError{ErrQuotaExceeded, "QuotaExceeded.Route"})
	if got := ErrorClass(err); got != "quota" {
		t.Errorf("ErrorClass = %s", got)
	}
	if got := ErrorCode(err); got != "QuotaExceeded.Route" {
		t.Errorf("ErrorCode = %s", got)
	}
	if ErrorCode(errFake.class) != "" || ErrorClass(errFake.class) != "unauthorized" {
		t.Error("bare class misclassified")
	}
	if !Retryable(errorsJoinWrap(&apiError{ErrBusy, "TaskConflict"}, &apiError{ErrThrottled, "Throttling.User"})) {
		t.Error("busy+throttled not retryable")
	}
	if Retryable(errorsJoinWrap(&apiError{ErrBusy, "TaskConflict"}, &apiError{ErrInvalid, "InvalidParameter"})) {
		t.Error("a join with an invalid request is retryable")
	}
}

// errorsJoinWrap wraps each error, joins them and wraps the join, as a
// pass does with its per-entry failures.
func errorsJoinWrap(errs ...error) error {
	var wrapped []error
	for _, e := range errs {
		wrapped = append(wrapped, fmt.Errorf("writing an entry: %w", e))
	}
	return fmt.Errorf("pass: %w", errors.Join(wrapped...))
}

// TestReportListsAreNeverNull: with nothing routable (an empty cluster,
// every node excluded) every list of the JSON and YAML reports is [], so
// that `jq '.routes[]'` works.
func TestReportListsAreNeverNull(t *testing.T) {
	excluded := testNode("i-a", "10.0.1.0/24")
	excluded.Labels[DefaultExcludeNodeLabel] = "true"
	for name, nodes := range map[string][]*corev1.Node{"empty cluster": nil, "all excluded": {excluded}} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nodes)
			h.startInformers()
			rep, err := h.ctrl.Audit(h.ctx)
			if err != nil {
				t.Fatal(err)
			}
			var js, ys bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteYAML(&ys); err != nil {
				t.Fatal(err)
			}
			for format, data := range map[string][]byte{"json": js.Bytes(), "yaml": ys.Bytes()} {
				var doc map[string]any
				if err := yaml.Unmarshal(data, &doc); err != nil {
					t.Fatalf("%s: %v", format, err)
				}
				for _, key := range []string{"tables", "routes", "unexpected", "conflicts", "blackholes", "problems", "withheld", "notes"} {
					list, ok := doc[key].([]any)
					if !ok {
						t.Errorf("%s: %q is %#v, want a list", format, key, doc[key])
						continue
					}
					if key != "tables" && len(list) != 0 {
						t.Errorf("%s: %q = %v, want []", format, key, list)
					}
				}
			}
		})
	}
}

// notingSource is a source that explains its routes.
type notingSource struct {
	nodeSource
	notes []Note
}

func (s notingSource) Notes() []Note { return s.notes }

// TestAuditShowsNotesWithoutDrift: a source's notes appear in the report
// and its table, and do not make an otherwise synced report drift.
func TestAuditShowsNotesWithoutDrift(t *testing.T) {
	var src notingSource
	h := newHarness(t, []*corev1.Node{testNode("i-a", "10.0.1.0/24")}, func(h *harness) {
		src = notingSource{
			nodeSource: nodeSource{nodes: h.factory.Core().V1().Nodes().Lister()},
			notes:      []Note{{Object: "Node/cn-chengdu.i-a", Node: "cn-chengdu.i-a", Message: "Node cn-chengdu.i-a has 2 blocks, published as 1 route entry."}},
		}
		h.source = src
	})
	h.start()
	h.eventually("routes", func() bool { return len(h.cloud.snapshot()) == 1 })
	rep, err := h.ctrl.Audit(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.InSync() || !reflect.DeepEqual(rep.Notes, src.notes) {
		t.Errorf("report: in sync %v, notes %v; want in sync with %v", rep.InSync(), rep.Notes, src.notes)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "NOTE") || !strings.Contains(buf.String(), "published as 1 route entry") {
		t.Errorf("table lacks the note:\n%s", buf.String())
	}
}

// TestReportDocumentShape checks the envelope scripts rely on (apiVersion,
// kind, summary, inSync) and that OnlyDrift keeps what needs attention while
// the summary still counts every route.
func TestReportDocumentShape(t *testing.T) {
	rep := &Report{ClusterID: "c", Routes: []RouteReport{
		{Node: "a", Destination: "10.0.0.0/24", State: StateInSync},
		{Node: "b", Destination: "10.0.1.0/24", State: StateMissing},
		{Node: "c", Destination: "10.0.2.0/24", State: StateInSync},
	}}
	drift := rep.OnlyDrift()
	if len(drift.Routes) != 1 || drift.Routes[0].Node != "b" || len(rep.Routes) != 3 {
		t.Fatalf("OnlyDrift routes %v (original %d), want only b and the original untouched", drift.Routes, len(rep.Routes))
	}
	if got, want := drift.Summary(), rep.Summary(); got != want || want != "drift: 2 in-sync, 1 missing" {
		t.Errorf("summary after OnlyDrift %q, before %q, want both %q", got, want, "drift: 2 in-sync, 1 missing")
	}
	for _, write := range []func(io.Writer) error{drift.WriteJSON, drift.WriteYAML} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if doc["apiVersion"] != ReportAPIVersion || doc["kind"] != ReportKind || doc["summary"] != rep.Summary() || doc["inSync"] != false ||
			doc["clusterID"] != "c" || len(doc["routes"].([]any)) != 1 {
			t.Errorf("document %v", doc)
		}
	}
	var b bytes.Buffer
	if err := drift.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "10.0.0.0/24") || !strings.Contains(b.String(), "10.0.1.0/24") || !strings.HasSuffix(b.String(), rep.Summary()+"\n") {
		t.Errorf("table with only drift:\n%s", b.String())
	}
}
