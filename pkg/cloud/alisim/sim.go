package alisim

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Simulator. The zero value of every field is a usable
// default.
type Options struct {
	// AccessKeyID and AccessKeySecret add a permanent access key allowed to
	// call every action. Both empty: no key is added (add them with
	// AddAccessKey or in State).
	AccessKeyID     string
	AccessKeySecret string
	// State is the initial state; nil means DefaultState().
	State *State
	// Clock drives every simulated time; nil means the wall clock.
	Clock Clock
	// WriteBase and WritePerEntry model how long a route write keeps its
	// entries transitional and the VPC busy: WriteBase + WritePerEntry × n
	// for a write of n entries. Zero means the defaults (50ms and 1ms);
	// negative means instantaneous.
	WriteBase     time.Duration
	WritePerEntry time.Duration
	// EntryPending is how long written entries stay Pending (Modifying,
	// Deleting) at least, independently of the VPC's busy window; zero
	// means as long as the busy window. Longer than the window, it
	// exposes the states the real VPC shows between writes: a batch
	// create hitting a Pending entry (VPC_ROUTE_ENTRY_STATUS_ERROR) and
	// single writes refused while the table has Pending entries.
	EntryPending time.Duration
	// TimestampWindow is how far a request Timestamp may be from the clock;
	// zero means 15 minutes.
	TimestampWindow time.Duration
	// NextTokenTTL is how long a DescribeRouteEntryList NextToken stays
	// valid; an older one answers IllegalParam.NextTokenExpired. Zero
	// means 10 minutes, negative never.
	NextTokenTTL time.Duration
	// IPVersionEncoding is which RouteEntries.N.IpVersion values
	// CreateRouteEntries accepts: IPVersionAny (default), IPVersionInteger
	// or IPVersionName. The reference pages disagree, so clients must work
	// under each.
	IPVersionEncoding string
	// BusyCode is the error code of a route write while the VPC is busy;
	// empty means TaskConflict.
	BusyCode string
	// ErrorStatus overrides the HTTP status of error codes.
	ErrorStatus map[string]int
	// MetadataInstanceID is the instance the metadata service describes;
	// empty means the first instance of the state.
	MetadataInstanceID string
	// MetadataRoleName is the RAM role attached to that instance; empty
	// means DefaultRoleName. The role must exist in the state for the
	// credentials path to answer.
	MetadataRoleName string
	// AllowIMDSv1 lets metadata GETs through without a session token.
	AllowIMDSv1 bool
	// SourceDestCheckSince is the date from which a new instance's primary
	// ENI has the source/destination check on by default (Alibaba's phased
	// rollout started 2025-04-22); instances created earlier, and those of
	// a state without a creation time, have it off. Zero means
	// DefaultSourceDestCheckSince.
	SourceDestCheckSince time.Time
	// ENIModifyDelay is how long a ModifyNetworkInterfaceAttribute takes to
	// show in DescribeNetworkInterfaces; a second change of the same ENI
	// meanwhile fails with InvalidOperation.Conflict. Zero means the
	// default (50ms); negative means instantaneous.
	ENIModifyDelay time.Duration
	// RAMPolicy, when set, is the RAM policy of the key of AccessKeyID;
	// nil lets that key call every action.
	RAMPolicy *Policy
	// ECSDescribeDenial is how ECS Describe actions refuse a key whose
	// policy lacks the action: ECSDenialEmptyList (the default, HTTP 200
	// and an empty list) or ECSDenialForbidden (HTTP 403 Forbidden.RAM).
	ECSDescribeDenial string
	// VPCDenialCode is the code of a VPC action refused by the key's
	// policy, always with HTTP 403: Forbidden.RAM (the default, the
	// OpenAPI gateway's code) or Forbbiden (sic, the VPC reference's
	// error tables).
	VPCDenialCode string
	// Logger, when set, receives one record per API call: action, result
	// code, request ID, access key kind and duration, never secrets.
	Logger *slog.Logger
}

const (
	defaultWriteBase       = 50 * time.Millisecond
	defaultWritePerEntry   = time.Millisecond
	defaultTimestampWindow = 15 * time.Minute
	defaultNextTokenTTL    = 10 * time.Minute
	nonceRetention         = 30 * time.Minute
)

// Simulator is an in-memory Alibaba Cloud account serving the VPC, ECS and
// STS OpenAPI (APIHandler), the ECS instance metadata service
// (MetadataHandler) and an admin API (AdminHandler). Every exported method is
// safe for concurrent use.
type Simulator struct {
	opts  Options
	clock Clock

	mu sync.Mutex
	st model
	// Per-call machinery.
	nonces       map[string]time.Time
	clientTokens map[string]clientTokenRecord
	faults       []*faultState
	throttles    map[string]*bucket
	counters     map[string]map[string]int
	oidcTokens   map[string]string // registered token → provider ARN
	imdsTokens   map[string]time.Time
	imdsCreds    *imdsCredentials
	seq          uint64
}

// model is the simulated account state, indexed.
type model struct {
	region     string
	account    string
	vpcs       map[string]*VPC
	vswitches  map[string]*VSwitch
	tables     map[string]*RouteTable
	entries    map[string]*RouteEntry            // by ID
	byTable    map[string]map[string]*RouteEntry // table → ID → entry
	instances  map[string]*Instance
	enis       map[string]*NetworkInterface
	keys       map[string]*credential
	providers  map[string]*OIDCProvider
	roles      map[string]*Role // by ARN
	busyUntil  map[string]time.Time
	forcedBusy map[string]bool
}

// credential is a permanent or temporary access key.
type credential struct {
	AccessKey
	token   string    // temporary keys only
	expires time.Time // temporary keys only
}

func (c *credential) temporary() bool { return c.token != "" }

// clientTokenRecord remembers an idempotent CreateRouteEntry.
type clientTokenRecord struct {
	fingerprint string
	entryID     string
	at          time.Time
}

// New returns a simulator loaded with opts.State (or DefaultState).
func New(opts Options) (*Simulator, error) {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	switch {
	case opts.WriteBase == 0:
		opts.WriteBase = defaultWriteBase
	case opts.WriteBase < 0:
		opts.WriteBase = 0
	}
	switch {
	case opts.WritePerEntry == 0:
		opts.WritePerEntry = defaultWritePerEntry
	case opts.WritePerEntry < 0:
		opts.WritePerEntry = 0
	}
	if opts.TimestampWindow <= 0 {
		opts.TimestampWindow = defaultTimestampWindow
	}
	if opts.NextTokenTTL == 0 {
		opts.NextTokenTTL = defaultNextTokenTTL
	}
	switch opts.IPVersionEncoding {
	case "":
		opts.IPVersionEncoding = IPVersionAny
	case IPVersionAny, IPVersionInteger, IPVersionName:
	default:
		return nil, fmt.Errorf("IP version encoding %q: want %s, %s or %s", opts.IPVersionEncoding, IPVersionAny, IPVersionInteger, IPVersionName)
	}
	if opts.BusyCode == "" {
		opts.BusyCode = CodeTaskConflict
	}
	if opts.SourceDestCheckSince.IsZero() {
		opts.SourceDestCheckSince = DefaultSourceDestCheckSince
	}
	switch {
	case opts.ENIModifyDelay == 0:
		opts.ENIModifyDelay = defaultENIModifyDelay
	case opts.ENIModifyDelay < 0:
		opts.ENIModifyDelay = 0
	}
	if opts.MetadataRoleName == "" {
		opts.MetadataRoleName = DefaultRoleName
	}
	var err error
	if opts.ECSDescribeDenial, err = oneOf("ECS describe denial", opts.ECSDescribeDenial, ECSDenialEmptyList, ECSDenialForbidden); err != nil {
		return nil, err
	}
	if opts.VPCDenialCode, err = oneOf("VPC denial code", opts.VPCDenialCode, CodeForbiddenRAM, CodeForbbiden); err != nil {
		return nil, err
	}
	if opts.RAMPolicy != nil {
		if opts.AccessKeyID == "" {
			return nil, fmt.Errorf("a RAM policy needs the access key it applies to: %w", ErrInvalid)
		}
		if err := opts.RAMPolicy.Validate(); err != nil {
			return nil, err
		}
	}
	s := &Simulator{
		opts:         opts,
		clock:        opts.Clock,
		nonces:       map[string]time.Time{},
		clientTokens: map[string]clientTokenRecord{},
		throttles:    map[string]*bucket{},
		counters:     map[string]map[string]int{},
		oidcTokens:   map[string]string{},
		imdsTokens:   map[string]time.Time{},
	}
	if (opts.AccessKeyID == "") != (opts.AccessKeySecret == "") {
		return nil, fmt.Errorf("access key id and secret must be given together")
	}
	st := opts.State
	if st == nil {
		st = DefaultState()
	}
	if err := s.LoadState(st); err != nil {
		return nil, err
	}
	return s, nil
}

// oneOf checks an option against its allowed values; empty means the
// first, the default.
func oneOf(what, v string, allowed ...string) (string, error) {
	if v == "" {
		return allowed[0], nil
	}
	if !slices.Contains(allowed, v) {
		return "", fmt.Errorf("%s %q is not one of %v: %w", what, v, allowed, ErrInvalid)
	}
	return v, nil
}

// Clock returns the simulator's clock.
func (s *Simulator) Clock() Clock { return s.clock }

// LoadState replaces the whole simulated account (not faults, throttles or
// counters; the access key of Options and temporary credentials already
// issued are kept). Entries without an ID get one; entries without a status are
// Available; every VPC gets its system route table and system entries if the
// state lacks them.
func (s *Simulator) LoadState(in *State) error {
	st := cloneState(in)
	if st.Region == "" {
		st.Region = DefaultRegion
	}
	if st.AccountID == "" {
		st.AccountID = DefaultAccountID
	}
	if err := st.validate(); err != nil {
		return fmt.Errorf("loading state: %w: %w", ErrInvalid, err)
	}
	m := model{
		region:     st.Region,
		account:    st.AccountID,
		vpcs:       map[string]*VPC{},
		vswitches:  map[string]*VSwitch{},
		tables:     map[string]*RouteTable{},
		entries:    map[string]*RouteEntry{},
		byTable:    map[string]map[string]*RouteEntry{},
		instances:  map[string]*Instance{},
		enis:       map[string]*NetworkInterface{},
		keys:       map[string]*credential{},
		providers:  map[string]*OIDCProvider{},
		roles:      map[string]*Role{},
		busyUntil:  map[string]time.Time{},
		forcedBusy: map[string]bool{},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range st.VPCs {
		v := st.VPCs[i]
		if v.VRouterID == "" {
			v.VRouterID = s.newID("vrt-")
		}
		m.vpcs[v.ID] = &v
	}
	for i := range st.RouteTables {
		t := st.RouteTables[i]
		m.tables[t.ID] = &t
		m.byTable[t.ID] = map[string]*RouteEntry{}
	}
	for _, v := range m.vpcs {
		if m.systemTable(v.ID) == nil {
			t := &RouteTable{ID: s.newID("vtb-"), VPCID: v.ID, Type: TableTypeSystem}
			m.tables[t.ID] = t
			m.byTable[t.ID] = map[string]*RouteEntry{}
		}
	}
	for i := range st.VSwitches {
		w := st.VSwitches[i]
		if w.RouteTableID == "" {
			w.RouteTableID = m.systemTable(w.VPCID).ID
		}
		if w.Zone == "" {
			w.Zone = DefaultZone
		}
		m.vswitches[w.ID] = &w
	}
	now := s.clock.Now()
	for i := range st.Entries {
		e := st.Entries[i]
		if e.ID == "" {
			e.ID = s.newID("rte-")
		}
		e.setDefaults(now)
		m.addEntry(&e)
	}
	for i := range st.Instances {
		in := st.Instances[i]
		w := m.vswitches[in.VSwitchID]
		in.VPCID = w.VPCID
		if in.Zone == "" {
			in.Zone = w.Zone
		}
		if in.Status == "" {
			in.Status = InstanceRunning
		}
		m.instances[in.ID] = &in
	}
	if err := s.loadENIsLocked(&m, st.NetworkInterfaces, now); err != nil {
		return fmt.Errorf("loading state: %w: %w", ErrInvalid, err)
	}
	for _, k := range st.AccessKeys {
		k.AllowedActions = slices.Clone(k.AllowedActions)
		k.Policy = k.Policy.clone()
		m.keys[k.ID] = &credential{AccessKey: k}
	}
	// The key of Options survives state loads: whoever started the
	// simulator keeps access to it, with the policy of Options unless the
	// state gives it another.
	if id := s.opts.AccessKeyID; id != "" && m.keys[id] == nil {
		m.keys[id] = &credential{AccessKey: AccessKey{ID: id, Secret: s.opts.AccessKeySecret, Policy: s.opts.RAMPolicy.clone()}}
	}
	for i := range st.OIDCProviders {
		p := st.OIDCProviders[i]
		m.providers[p.ARN] = &p
	}
	for i := range st.Roles {
		r := st.Roles[i]
		r.Policy = r.Policy.clone()
		m.roles[r.ARN] = &r
	}
	// Keep temporary credentials already issued: they belong to the
	// account, not to its network state.
	if s.st.keys != nil {
		for id, c := range s.st.keys {
			if c.temporary() {
				m.keys[id] = c
			}
		}
	}
	s.st = m
	for _, v := range m.vpcs {
		s.ensureSystemEntriesLocked(v.ID, now)
	}
	return nil
}

// State returns a snapshot of the simulated account, with entry
// transitions applied up to now. Temporary credentials are not included.
func (s *Simulator) State() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	m := &s.st
	out := &State{Region: m.region, AccountID: m.account}
	for _, id := range sortedKeys(m.vpcs) {
		out.VPCs = append(out.VPCs, *m.vpcs[id])
	}
	for _, id := range sortedKeys(m.vswitches) {
		out.VSwitches = append(out.VSwitches, *m.vswitches[id])
	}
	for _, id := range sortedKeys(m.tables) {
		out.RouteTables = append(out.RouteTables, *m.tables[id])
	}
	for _, id := range sortedKeys(m.entries) {
		out.Entries = append(out.Entries, *m.entries[id])
	}
	for _, id := range sortedKeys(m.instances) {
		out.Instances = append(out.Instances, *m.instances[id])
	}
	out.NetworkInterfaces = s.networkInterfacesLocked("")
	for _, id := range sortedKeys(m.keys) {
		if k := m.keys[id]; !k.temporary() {
			ak := k.AccessKey
			ak.AllowedActions = slices.Clone(ak.AllowedActions)
			ak.Policy = ak.Policy.clone()
			out.AccessKeys = append(out.AccessKeys, ak)
		}
	}
	for _, id := range sortedKeys(m.providers) {
		p := *m.providers[id]
		p.ClientIDs = slices.Clone(p.ClientIDs)
		out.OIDCProviders = append(out.OIDCProviders, p)
	}
	for _, id := range sortedKeys(m.roles) {
		r := *m.roles[id]
		r.TrustedProviders = slices.Clone(r.TrustedProviders)
		r.AllowedActions = slices.Clone(r.AllowedActions)
		r.Policy = r.Policy.clone()
		out.Roles = append(out.Roles, r)
	}
	return out
}

func cloneState(in *State) *State {
	out := *in
	out.VPCs = slices.Clone(in.VPCs)
	out.VSwitches = slices.Clone(in.VSwitches)
	out.RouteTables = slices.Clone(in.RouteTables)
	out.Entries = slices.Clone(in.Entries)
	out.Instances = slices.Clone(in.Instances)
	out.NetworkInterfaces = slices.Clone(in.NetworkInterfaces)
	for i := range out.NetworkInterfaces {
		out.NetworkInterfaces[i].PrivateIPs = slices.Clone(out.NetworkInterfaces[i].PrivateIPs)
	}
	out.AccessKeys = slices.Clone(in.AccessKeys)
	out.OIDCProviders = slices.Clone(in.OIDCProviders)
	out.Roles = slices.Clone(in.Roles)
	return &out
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// newID returns a fresh resource ID with the given prefix. IDs sort in
// creation order, which keeps pagination stable.
func (s *Simulator) newID(prefix string) string {
	s.seq++
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s2vc%012d%s", prefix, s.seq, hex.EncodeToString(b[:])[:5])
}

func (m *model) systemTable(vpcID string) *RouteTable {
	for _, t := range m.tables {
		if t.VPCID == vpcID && t.Type == TableTypeSystem {
			return t
		}
	}
	return nil
}

// ensureSystemEntriesLocked adds the entries the real VPC router adds by
// itself: in every route table of the VPC, system table or custom, one
// local route per vSwitch CIDR of the VPC (IPv4 and IPv6), as the console
// and DescribeRouteEntryList show them; the cloud service route
// 100.64.0.0/10 in the system table; and, once the VPC has an IPv6 gateway,
// the custom route ::/0 to it in the system table, which counts against the
// table's quota like any custom entry.
func (s *Simulator) ensureSystemEntriesLocked(vpcID string, now time.Time) {
	m := &s.st
	sys := m.systemTable(vpcID)
	want := map[string][]RouteEntry{}
	if sys != nil {
		want[sys.ID] = append(want[sys.ID], RouteEntry{Destination: cloudServiceCIDR, NextHopType: NextHopService, Type: EntryTypeSystem})
		if gw := m.vpcs[vpcID].IPv6GatewayID; gw != "" {
			want[sys.ID] = append(want[sys.ID], RouteEntry{Destination: ipv6Default, NextHopType: NextHopIPv6Gateway, NextHopID: gw, Type: EntryTypeCustom})
		}
	}
	for _, t := range m.tables {
		if t.VPCID != vpcID {
			continue
		}
		for _, w := range m.vswitches {
			if w.VPCID != vpcID {
				continue
			}
			want[t.ID] = append(want[t.ID], RouteEntry{Destination: w.CIDR, NextHopType: NextHopLocal, NextHopID: w.ID, Type: EntryTypeSystem})
			if w.IPv6CIDR.IsValid() {
				want[t.ID] = append(want[t.ID], RouteEntry{Destination: w.IPv6CIDR, NextHopType: NextHopLocal, NextHopID: w.ID, Type: EntryTypeSystem})
			}
		}
	}
	for table, entries := range want {
		for _, e := range entries {
			if m.findByDestination(table, e.Destination) != nil {
				continue
			}
			e.ID = s.newID("rte-")
			e.TableID = table
			e.Status = StatusAvailable
			e.Created = now
			m.addEntry(&e)
		}
	}
}

// addEntry and removeEntry keep the two indexes of entries, by ID and by
// table, in step.
func (m *model) addEntry(e *RouteEntry) {
	m.entries[e.ID] = e
	m.byTable[e.TableID][e.ID] = e
}

func (m *model) removeEntry(e *RouteEntry) {
	delete(m.entries, e.ID)
	delete(m.byTable[e.TableID], e.ID)
}

// setDefaults fills the zero fields of an entry that is put or loaded:
// Custom, Instance next hop, Available, created now.
func (e *RouteEntry) setDefaults(now time.Time) {
	if e.Type == "" {
		e.Type = EntryTypeCustom
	}
	if e.NextHopType == "" {
		e.NextHopType = NextHopInstance
	}
	if e.Status == "" {
		e.Status = StatusAvailable
	}
	if e.Created.IsZero() {
		e.Created = now
	}
}

func (m *model) findByDestination(table string, dst netip.Prefix) *RouteEntry {
	for _, e := range m.byTable[table] {
		if e.Destination == dst {
			return e
		}
	}
	return nil
}

// advanceLocked applies every entry transition due at the clock's now.
func (s *Simulator) advanceLocked() {
	now := s.clock.Now()
	for _, e := range s.st.entries {
		if e.Until.IsZero() || now.Before(e.Until) {
			continue
		}
		switch e.Status {
		case StatusPending, StatusModifying:
			e.Status = StatusAvailable
			e.Until = time.Time{}
		case StatusDeleting:
			s.st.removeEntry(e)
		}
	}
}

// writeDuration is how long a write of n entries keeps the VPC busy.
func (s *Simulator) writeDuration(n int) time.Duration {
	return s.opts.WriteBase + time.Duration(n)*s.opts.WritePerEntry
}

// vpcBusyLocked reports whether a route write is in flight in the VPC.
func (s *Simulator) vpcBusyLocked(vpcID string, now time.Time) bool {
	return s.st.forcedBusy[vpcID] || now.Before(s.st.busyUntil[vpcID])
}

// lockForWrite takes the lock, re-reads the clock into c.now (so a write's
// times are taken under the lock that serializes writes) and applies due
// transitions.
func (s *Simulator) lockForWrite(c *call) {
	s.mu.Lock()
	c.now = s.clock.Now()
	s.advanceLocked()
}

// startWriteLocked starts a route write of duration d in the VPC: the VPC
// is busy until now+d. It returns when the written entries settle
// (become Available or vanish): at the end of the busy window, or after
// Options.EntryPending when that is longer, so that entries can still be
// Pending while the VPC already accepts the next write.
func (s *Simulator) startWriteLocked(vpcID string, now time.Time, d time.Duration) time.Time {
	until := now.Add(d)
	if until.After(s.st.busyUntil[vpcID]) {
		s.st.busyUntil[vpcID] = until
	}
	if settle := now.Add(s.opts.EntryPending); settle.After(until) {
		return settle
	}
	return until
}

// tableUnsettledLocked reports whether an entry of the table is Pending or
// Modifying, which the CreateRouteEntry and DeleteRouteEntry error tables
// name as the cause of IncorrectRouteEntryStatus.
func (s *Simulator) tableUnsettledLocked(table string) bool {
	for _, e := range s.st.byTable[table] {
		if e.Status == StatusPending || e.Status == StatusModifying {
			return true
		}
	}
	return false
}

// sortEntries orders entries by ID, i.e. creation order.
func sortEntries(es []*RouteEntry) {
	slices.SortFunc(es, func(a, b *RouteEntry) int { return cmp.Compare(a.ID, b.ID) })
}

// normalizeAction strips a "product:" prefix.
func normalizeAction(a string) (product, action string) {
	if i := strings.IndexByte(a, ':'); i >= 0 {
		return strings.ToLower(a[:i]), a[i+1:]
	}
	return "", a
}
