package route

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// RouteState is the state of one desired route in one table.
type RouteState string

// Route states, as shown by audit and used by the drift metrics.
const (
	// StateInSync: our entry is there, Available, with the right next hop.
	StateInSync RouteState = "in-sync"
	// StateMissing: no entry; it will be created.
	StateMissing RouteState = "missing"
	// StateWrongNextHop: our entry routes to another instance; it will be
	// replaced.
	StateWrongNextHop RouteState = "wrong-next-hop"
	// StatePending: an entry is in transition (Pending, Modifying,
	// Deleting); the next pass decides.
	StatePending RouteState = "pending"
	// StateConflict: a foreign entry holds the destination.
	StateConflict RouteState = "conflict"
	// StateAdoptable: a matching unmarked entry will be adopted.
	StateAdoptable RouteState = "adoptable"
	// StateWithheld: the slot waits for a deletion the safety valve
	// withheld.
	StateWithheld RouteState = "withheld"
	// StateFailed: the write of this pass failed.
	StateFailed RouteState = "failed"
	// StateSourceDestCheck: the entry is in place, but the ENI of its next
	// hop has the source/destination check on (or unknown), so it carries
	// no pod traffic.
	StateSourceDestCheck RouteState = "source-dest-check"
	// StateUnverified: the node's instance cannot be looked up, so its
	// owned entry (whose marker names the node) is kept but not verified;
	// it never counts as published.
	StateUnverified RouteState = "unverified"
)

// RouteReport is one desired route in one table.
type RouteReport struct {
	Node        string     `json:"node"`
	Table       string     `json:"table"`
	Destination string     `json:"destination"`
	NextHop     string     `json:"nextHop"`
	State       RouteState `json:"state"`
	// EntryID is the entry holding the slot, when there is one.
	EntryID string `json:"entryID,omitempty"`
	// Detail explains a state other than in-sync.
	Detail string `json:"detail,omitempty"`
}

// TableReport is one route table and its quota headroom.
type TableReport struct {
	TableInfo
	// Used counts every custom entry of the table, whoever owns it.
	Used int `json:"used"`
	// Headroom is Quota - Used; absent when the quota is unknown.
	Headroom *int `json:"headroom,omitempty"`
}

// Blackhole is an owned entry whose next hop cannot forward traffic. Entries
// of released instances are deleted (the node is gone or gets no route);
// entries of stopped instances are kept, since the instance may start again
// and keeps its pod CIDR, and are only reported.
type Blackhole struct {
	Route          Route  `json:"route"`
	InstanceStatus string `json:"instanceStatus"` // Stopped, Released, ...
	Action         string `json:"action"`         // kept, deleted, withheld
}

// Report is the state of the cluster's routes as seen by one pass: what
// audit prints and what the drift metrics count.
type Report struct {
	ClusterID string `json:"clusterID"`
	DryRun    bool   `json:"dryRun,omitempty"`
	// Owned is the number of owned entries found in the tables.
	Owned  int           `json:"owned"`
	Tables []TableReport `json:"tables"`
	// Routes lists every desired route in every table with its state.
	Routes []RouteReport `json:"routes"`
	// Unexpected are owned entries that are not desired as they are
	// (stale or wrong next hop) and still present.
	Unexpected []Route     `json:"unexpected"`
	Conflicts  []Conflict  `json:"conflicts"`
	Blackholes []Blackhole `json:"blackholes"`
	Problems   []Problem   `json:"problems"`
	// ENIs is the source/destination check of each node's instance
	// (empty with --source-dest-check=ignore).
	ENIs []ENIReport `json:"enis"`
	// Notes explain how the source shaped the desired routes; they are
	// not drift.
	Notes []Note `json:"notes"`
	// SafetyValveTripped: the deletions in Withheld were not made.
	SafetyValveTripped bool `json:"safetyValveTripped,omitempty"`
	// Valve is the safety valve's state: the causes it withholds and the
	// budget left in its window for routes of existing nodes.
	Valve    ValveState `json:"valve"`
	Withheld []Route    `json:"withheld"`
	// OmittedInSync counts the in-sync routes OnlyDrift left out of Routes;
	// they still count in Counts and Summary.
	OmittedInSync int `json:"omittedInSync,omitempty"`
}

// ReportAPIVersion and ReportKind head the JSON and YAML renderings of a
// report, so that scripts can check the shape they parse; a change of shape
// that breaks them gets a new version.
const (
	ReportAPIVersion = "vpc-route-publisher.io/v1"
	ReportKind       = "RouteAudit"
)

// reportDocument is a report as rendered in JSON and YAML: the envelope,
// the one-line summary and the verdict, then the report's fields.
type reportDocument struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Summary    string `json:"summary"`
	InSync     bool   `json:"inSync"`
	*Report
}

func (r *Report) document() reportDocument {
	return reportDocument{APIVersion: ReportAPIVersion, Kind: ReportKind, Summary: r.Summary(), InSync: r.InSync(), Report: r.withEmptyLists()}
}

// OnlyDrift returns a copy of the report without the routes that are in
// sync, for audit --only-drift: what is left needs attention. The summary
// still counts the omitted routes.
func (r *Report) OnlyDrift() *Report {
	out := *r
	out.Routes = nil
	for _, rr := range r.Routes {
		if rr.State == StateInSync {
			out.OmittedInSync++
			continue
		}
		out.Routes = append(out.Routes, rr)
	}
	return &out
}

// withEmptyLists returns a copy of the report whose nil lists are empty, so
// that JSON and YAML show every list as [] rather than null: scripts can
// iterate over .routes[] of an empty cluster.
func (r *Report) withEmptyLists() *Report {
	out := *r
	out.Tables, out.Routes = orEmpty(out.Tables), orEmpty(out.Routes)
	out.Unexpected, out.Withheld = orEmpty(out.Unexpected), orEmpty(out.Withheld)
	out.Valve.Tripped = orEmpty(out.Valve.Tripped)
	out.Conflicts, out.Blackholes, out.Problems = orEmpty(out.Conflicts), orEmpty(out.Blackholes), orEmpty(out.Problems)
	out.ENIs, out.Notes = orEmpty(out.ENIs), orEmpty(out.Notes)
	return &out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// InSync reports whether nothing needs doing or attention: every desired
// route in sync, no unexpected entry, no conflict, no problem. Blackholes
// of stopped instances do not count as drift.
func (r *Report) InSync() bool {
	return !slices.ContainsFunc(r.Routes, func(rr RouteReport) bool { return rr.State != StateInSync }) &&
		len(r.Unexpected) == 0 && len(r.Conflicts) == 0 && len(r.Problems) == 0 && !r.SafetyValveTripped
}

// Counts returns the number of routes in each state.
func (r *Report) Counts() map[RouteState]int {
	counts := map[RouteState]int{}
	if r.OmittedInSync > 0 {
		counts[StateInSync] = r.OmittedInSync
	}
	for _, rr := range r.Routes {
		counts[rr.State]++
	}
	return counts
}

// WriteJSON renders the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r.document()); err != nil {
		return fmt.Errorf("writing the report as JSON: %w", err)
	}
	return nil
}

// WriteYAML renders the report as YAML.
func (r *Report) WriteYAML(w io.Writer) error {
	data, err := yaml.Marshal(r.document())
	if err != nil {
		return fmt.Errorf("rendering the report as YAML: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// WriteTable renders the report for humans: tables, routes, then every
// section that is not empty, and a one-line verdict.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	p("ROUTE TABLE\tTYPE\tUSED\tQUOTA\tHEADROOM\n")
	for _, t := range r.Tables {
		quota, headroom := "-", "-"
		if t.Quota > 0 {
			quota = fmt.Sprint(t.Quota)
		}
		if t.Headroom != nil {
			headroom = fmt.Sprint(*t.Headroom)
		}
		p("%s\t%s\t%d\t%s\t%s\n", t.ID, dash(t.Type), t.Used, quota, headroom)
	}
	p("\nNODE\tDESTINATION\tROUTE TABLE\tNEXT HOP\tSTATE\tDETAIL\n")
	for _, rr := range r.Routes {
		p("%s\t%s\t%s\t%s\t%s\t%s\n", rr.Node, rr.Destination, rr.Table, rr.NextHop, rr.State, rr.Detail)
	}
	if r.SafetyValveTripped || r.Valve.Deleted > 0 {
		p("\nSAFETY VALVE\tWITHHOLDING\tWINDOW\tBASE\tDELETED\tREMAINING\n")
		p("%d withheld\t%s\t%s\t%d\t%d\t%d\n", len(r.Withheld), dash(strings.Join(r.Valve.Tripped, ",")), r.Valve.Window, r.Valve.Base, r.Valve.Deleted, r.Valve.Remaining)
	}
	if len(r.Unexpected) > 0 {
		p("\nUNEXPECTED OWNED ENTRY\tDESTINATION\tROUTE TABLE\tNEXT HOP\tNODE\tSTATUS\n")
		for _, u := range r.Unexpected {
			p("%s\t%s\t%s\t%s\t%s\t%s\n", dash(u.EntryID), u.Destination, u.Table, u.NextHop, dash(u.Node), dash(u.Status))
		}
	}
	if len(r.Conflicts) > 0 {
		p("\nCONFLICT\tDESTINATION\tROUTE TABLE\tWANTED\tFOUND\tREASON\n")
		for _, c := range r.Conflicts {
			p("%s\t%s\t%s\t%s\t%s\t%s\n", c.Desired.Node, c.Desired.Destination, c.Desired.Table, c.Desired.NextHop, foundBy(c.Existing), c.Reason)
		}
	}
	if len(r.Blackholes) > 0 {
		p("\nBLACKHOLE\tDESTINATION\tROUTE TABLE\tINSTANCE\tSTATUS\tACTION\n")
		for _, b := range r.Blackholes {
			p("%s\t%s\t%s\t%s\t%s\t%s\n", dash(b.Route.Node), b.Route.Destination, b.Route.Table, b.Route.NextHop, b.InstanceStatus, b.Action)
		}
	}
	if eniSection(r.ENIs) {
		p("\nNODE\tINSTANCE\tENI\tSOURCE/DEST CHECK\tDETAIL\n")
		for _, e := range r.ENIs {
			p("%s\t%s\t%s\t%s\t%s\n", e.Node, e.Instance, dash(e.ENI), e.SourceDestCheck, e.Detail)
		}
	}
	if len(r.Problems) > 0 {
		p("\nPROBLEM\tREASON\tMESSAGE\n")
		for _, pr := range r.Problems {
			p("%s\t%s\t%s\n", pr.Object, pr.Reason, pr.Message)
		}
	}
	if len(r.Notes) > 0 {
		p("\nNOTE\tNODE\tMESSAGE\n")
		for _, n := range r.Notes {
			p("%s\t%s\t%s\n", dash(n.Object), dash(n.Node), n.Message)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"+r.Summary()+"\n"); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// Summary is the report's verdict in one line.
func (r *Report) Summary() string {
	var parts []string
	counts := r.Counts()
	for _, s := range []RouteState{StateInSync, StateMissing, StateWrongNextHop, StatePending, StateConflict, StateAdoptable, StateWithheld, StateFailed, StateSourceDestCheck, StateUnverified} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	for _, x := range []struct {
		n    int
		what string
	}{
		{len(r.Unexpected), "unexpected"},
		{len(r.Problems), "problem(s)"},
		{len(r.Blackholes), "blackhole(s)"},
	} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", x.n, x.what))
		}
	}
	if r.SafetyValveTripped {
		parts = append(parts, fmt.Sprintf("safety valve tripped (%s): %d deletion(s) of %d owned entries withheld",
			strings.Join(r.Valve.Tripped, ", "), len(r.Withheld), r.Owned))
	}
	verdict := "drift"
	if r.InSync() {
		verdict = "in sync"
	}
	if len(parts) == 0 {
		return verdict + ": no routes"
	}
	return verdict + ": " + strings.Join(parts, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func foundBy(e Route) string {
	s := e.NextHop
	if !e.IsInstance() {
		s = e.NextHopType + ":" + s
	}
	if e.Owner != "" {
		s += " (cluster " + e.Owner + ")"
	}
	return s
}

// eniSection reports whether the ENI section is worth printing: some check
// is on, unknown or was changed by the pass.
func eniSection(es []ENIReport) bool {
	return slices.ContainsFunc(es, func(e ENIReport) bool { return e.SourceDestCheck != CheckOff || e.Detail != "" })
}
