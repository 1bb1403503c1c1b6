package route

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// apiError stands in for pkg/cloud's APIError: an error class plus the
// cloud's code.
type apiError struct {
	class error
	code  string
}

func (e *apiError) Error() string     { return e.code + ": " + e.class.Error() }
func (e *apiError) Unwrap() error     { return e.class }
func (e *apiError) ErrorCode() string { return e.code }

// fakeCloud is an in-memory VPC: route tables holding at most one entry per
// destination, entries that are Pending until settled, per-destination
// injected errors, quotas, and an optional gate that stalls Create.
type fakeCloud struct {
	mu      sync.Mutex
	cluster string
	tables  []TableInfo
	entries map[Key]Route
	nextID  int

	// pendingTables' new entries stay Pending until settle is called.
	pendingTables map[string]bool
	// createErr/deleteErr fail writes of a destination.
	createErr map[netip.Prefix]error
	deleteErr map[netip.Prefix]error
	// gate, when set, stalls Create after gateAfter entries until the
	// gate is closed or the context is cancelled; stalled is closed when
	// it stalls.
	gate      chan struct{}
	gateAfter int
	stalled   chan struct{}

	// Counters of write calls (batches) and written entries.
	createCalls, deleteCalls, adoptCalls int
	createdKeys                          map[Key]int
	writes                               int
}

func newFakeCloud(cluster string, tables ...string) *fakeCloud {
	c := &fakeCloud{
		cluster: cluster, entries: map[Key]Route{}, pendingTables: map[string]bool{},
		createErr: map[netip.Prefix]error{}, deleteErr: map[netip.Prefix]error{}, createdKeys: map[Key]int{},
	}
	for _, t := range tables {
		c.tables = append(c.tables, TableInfo{ID: t, VPC: "vpc-1", Type: "System", Quota: 200})
	}
	return c
}

var _ Table = (*fakeCloud)(nil)

func (c *fakeCloud) Tables(context.Context) ([]TableInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.tables), nil
}

func (c *fakeCloud) List(context.Context) ([]Route, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []Route
	for _, r := range c.entries {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, compareRoutes)
	return rs, nil
}

func (c *fakeCloud) Create(ctx context.Context, rs []Route) []Result {
	c.mu.Lock()
	c.createCalls++
	gate, after, stalled := c.gate, c.gateAfter, c.stalled
	c.mu.Unlock()
	var results []Result
	for i, r := range rs {
		if gate != nil && i == after {
			close(stalled)
			select {
			case <-gate:
			case <-ctx.Done():
				return results // the rest were never sent
			}
		}
		results = append(results, c.createOne(r))
	}
	return results
}

func (c *fakeCloud) createOne(r Route) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if err := c.createErr[r.Destination]; err != nil {
		return Result{Route: r, Err: fmt.Errorf("creating %s: %w", r, err)}
	}
	if e, ok := c.entries[r.Key()]; ok {
		return Result{Route: r, Err: fmt.Errorf("creating %s: %w", r, &apiError{ErrConflict, "VPC_ROUTE_ENTRY_CIDR_BLOCK_DUPLICATE (held by " + e.EntryID + ")"})}
	}
	used := 0
	for k := range c.entries {
		if k.Table == r.Table {
			used++
		}
	}
	for _, t := range c.tables {
		if t.ID == r.Table && t.Quota > 0 && used >= t.Quota {
			return Result{Route: r, Err: fmt.Errorf("creating %s: %w", r, &apiError{ErrQuotaExceeded, "QuotaExceeded.Route"})}
		}
	}
	c.nextID++
	r.EntryID = fmt.Sprintf("rte-%d", c.nextID)
	r.Owner = c.cluster
	r.NextHopType = NextHopInstance
	r.Status = StatusAvailable
	if c.pendingTables[r.Table] {
		r.Status = StatusPending
	}
	c.entries[r.Key()] = r
	c.createdKeys[r.Key()]++
	return Result{Route: r}
}

func (c *fakeCloud) Delete(_ context.Context, rs []Route) []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleteCalls++
	var results []Result
	for _, r := range rs {
		c.writes++
		if err := c.deleteErr[r.Destination]; err != nil {
			results = append(results, Result{Route: r, Err: fmt.Errorf("deleting %s: %w", r, err)})
			continue
		}
		e, ok := c.entries[r.Key()]
		if !ok || e.NextHop != r.NextHop {
			results = append(results, Result{Route: r, Err: &apiError{ErrNotFound, "VPC_ROUTER_ENTRY_NOT_EXIST"}})
			continue
		}
		delete(c.entries, r.Key())
		results = append(results, Result{Route: r})
	}
	return results
}

func (c *fakeCloud) Adopt(_ context.Context, rs []Route) []Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adoptCalls++
	var results []Result
	for _, r := range rs {
		c.writes++
		e, ok := c.entries[r.Key()]
		if !ok {
			results = append(results, Result{Route: r, Err: &apiError{ErrNotFound, "InvalidRouteEntry.NotFound"}})
			continue
		}
		e.Owner, e.Node = c.cluster, r.Node
		c.entries[r.Key()] = e
		results = append(results, Result{Route: e})
	}
	return results
}

// put seeds an entry as if written out of band.
func (c *fakeCloud) put(r Route) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	if r.EntryID == "" {
		r.EntryID = fmt.Sprintf("rte-%d", c.nextID)
	}
	if r.Status == "" {
		r.Status = StatusAvailable
	}
	c.entries[r.Key()] = r
}

// settle makes every entry Available and new entries Available at once.
func (c *fakeCloud) settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.pendingTables)
	for k, e := range c.entries {
		e.Status = StatusAvailable
		c.entries[k] = e
	}
}

func (c *fakeCloud) do(f func(c *fakeCloud)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

// snapshot returns the entries as "table dst -> hop (owner/node)" lines.
func (c *fakeCloud) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for _, e := range c.entries {
		lines = append(lines, fmt.Sprintf("%s %s -> %s (%s/%s)", e.Table, e.Destination, e.NextHop, e.Owner, e.Node))
	}
	slices.Sort(lines)
	return lines
}

// fakeInstances maps provider IDs (region.instance) to instances and
// reports their status; instances are Running unless stopped or released.
type fakeInstances struct {
	mu       sync.Mutex
	stopped  map[string]bool
	released map[string]bool
	fail     map[string]error // by node name
	lookups  int
}

func newFakeInstances() *fakeInstances {
	return &fakeInstances{stopped: map[string]bool{}, released: map[string]bool{}, fail: map[string]error{}}
}

var _ Instances = (*fakeInstances)(nil)

func (f *fakeInstances) InstanceID(_ context.Context, n NodeRef) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if err := f.fail[n.Name]; err != nil {
		return "", err
	}
	id := strings.TrimPrefix(n.ProviderID, "alicloud://")
	_, id, ok := strings.Cut(id, ".")
	if !ok || !strings.HasPrefix(id, "i-") {
		return "", fmt.Errorf("node %s: providerID %q: %w", n.Name, n.ProviderID, ErrNoInstance)
	}
	return id, nil
}

func (f *fakeInstances) Status(_ context.Context, ids []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for _, id := range ids {
		switch {
		case f.released[id]:
		case f.stopped[id]:
			m[id] = InstanceStopped
		default:
			m[id] = InstanceRunning
		}
	}
	return m, nil
}

func (f *fakeInstances) do(fn func(f *fakeInstances)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// nodeSource is the host-local source: every node's spec.podCIDRs.
type nodeSource struct {
	nodes corelisters.NodeLister
}

func (s nodeSource) Routes(context.Context) ([]Route, []Problem, error) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	var rs []Route
	for _, n := range nodes {
		for _, c := range n.Spec.PodCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				continue
			}
			rs = append(rs, Route{Node: n.Name, Destination: p})
		}
	}
	return rs, nil, nil
}

// staticSource stands in for the SpiderIPPool source: routes set by the
// test, which calls Enqueue like the pool informer does.
type staticSource struct {
	mu       sync.Mutex
	routes   []Route
	problems []Problem
	err      error
}

func (s *staticSource) Routes(context.Context) ([]Route, []Problem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes), slices.Clone(s.problems), s.err
}

func (s *staticSource) set(routes []Route, problems []Problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes, s.problems = routes, problems
}
