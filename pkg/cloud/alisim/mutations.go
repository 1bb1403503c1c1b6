package alisim

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// ErrNotFound is returned by the out-of-band methods for an unknown
// resource.
var ErrNotFound = errors.New("not found")

// ErrInvalid is returned by the out-of-band methods for a bad argument.
var ErrInvalid = errors.New("invalid argument")

// Routes returns the entries of a route table, system ones included, in
// creation order, with transitions applied up to now.
func (s *Simulator) Routes(tableID string) ([]RouteEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	if _, ok := s.st.tables[tableID]; !ok {
		return nil, fmt.Errorf("route table %s: %w", tableID, ErrNotFound)
	}
	list := make([]*RouteEntry, 0, len(s.st.byTable[tableID]))
	for _, e := range s.st.byTable[tableID] {
		list = append(list, e)
	}
	sortEntries(list)
	out := make([]RouteEntry, len(list))
	for i, e := range list {
		out[i] = *e
	}
	return out, nil
}

// PutRoute adds an entry out of band, as a user of the console would,
// bypassing quota, busy state and validation other than the table's
// existence and destination uniqueness. Empty Type means Custom, empty
// NextHopType Instance, empty Status Available.
func (s *Simulator) PutRoute(e RouteEntry) (RouteEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	if _, ok := s.st.tables[e.TableID]; !ok {
		return RouteEntry{}, fmt.Errorf("route table %s: %w", e.TableID, ErrNotFound)
	}
	if !e.Destination.IsValid() {
		return RouteEntry{}, fmt.Errorf("route entry destination: %w", ErrInvalid)
	}
	e.Destination = e.Destination.Masked()
	if s.st.findByDestination(e.TableID, e.Destination) != nil {
		return RouteEntry{}, fmt.Errorf("destination %s already in route table %s: %w", e.Destination, e.TableID, ErrInvalid)
	}
	if e.ID == "" {
		e.ID = s.newID("rte-")
	} else if _, dup := s.st.entries[e.ID]; dup {
		return RouteEntry{}, fmt.Errorf("route entry %s already exists: %w", e.ID, ErrInvalid)
	}
	e.setDefaults(s.clock.Now())
	ne := e
	s.st.addEntry(&ne)
	return ne, nil
}

// DeleteRoute removes an entry out of band, immediately.
func (s *Simulator) DeleteRoute(entryID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.st.entries[entryID]
	if !ok {
		return fmt.Errorf("route entry %s: %w", entryID, ErrNotFound)
	}
	s.st.removeEntry(e)
	return nil
}

// RouteEdit is an out-of-band change of an entry; nil fields are kept.
type RouteEdit struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	NextHopID   *string `json:"nextHopId,omitempty"`
	// Status sets the entry's status; a transitional status ends after
	// StatusFor (0: stays until changed again).
	Status    *string       `json:"status,omitempty"`
	StatusFor time.Duration `json:"statusFor,omitempty"`
}

// ModifyRoute changes an entry out of band, immediately.
func (s *Simulator) ModifyRoute(entryID string, edit RouteEdit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	e, ok := s.st.entries[entryID]
	if !ok {
		return fmt.Errorf("route entry %s: %w", entryID, ErrNotFound)
	}
	if edit.Name != nil {
		e.Name = *edit.Name
	}
	if edit.Description != nil {
		e.Description = *edit.Description
	}
	if edit.NextHopID != nil {
		e.NextHopID = *edit.NextHopID
	}
	if edit.Status != nil {
		switch *edit.Status {
		case StatusAvailable, StatusPending, StatusModifying, StatusDeleting:
		default:
			return fmt.Errorf("status %q: %w", *edit.Status, ErrInvalid)
		}
		e.Status, e.Until = *edit.Status, time.Time{}
		if edit.StatusFor > 0 && *edit.Status != StatusAvailable {
			e.Until = s.clock.Now().Add(edit.StatusFor)
		}
	}
	return nil
}

// SetInstanceStatus sets an instance's status (Running, Stopped, ...).
func (s *Simulator) SetInstanceStatus(id, status string) error {
	if !instanceStatuses[status] {
		return fmt.Errorf("instance status %q: %w", status, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.st.instances[id]
	if !ok {
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	in.Status = status
	return nil
}

// ReleaseInstance deletes an instance. Route entries pointing at it stay,
// as they do in a real VPC (they blackhole).
func (s *Simulator) ReleaseInstance(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.instances[id]; !ok {
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	delete(s.st.instances, id)
	s.st.releaseENIsLocked(id)
	return nil
}

// AddInstances creates n Running instances in a vSwitch (empty: the first
// vSwitch by ID) with consecutive private IPs, skipping addresses in use and
// the first four and the last address of the vSwitch, which the VPC reserves.
// Each gets a primary ENI whose source/destination check is on when the
// clock is past Options.SourceDestCheckSince, as for a new instance.
func (s *Simulator) AddInstances(n int, vswitchID string) ([]Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if vswitchID == "" {
		ids := sortedKeys(s.st.vswitches)
		if len(ids) == 0 {
			return nil, fmt.Errorf("no vswitch: %w", ErrNotFound)
		}
		vswitchID = ids[0]
	}
	w, ok := s.st.vswitches[vswitchID]
	if !ok {
		return nil, fmt.Errorf("vswitch %s: %w", vswitchID, ErrNotFound)
	}
	used := s.st.usedIPsLocked()
	now := s.clock.Now()
	out := make([]Instance, 0, n)
	a := w.CIDR.Masked().Addr().Next().Next().Next()
	for len(out) < n {
		a = a.Next()
		if !a.IsValid() || !w.CIDR.Contains(a) || !w.CIDR.Contains(a.Next()) {
			// Roll back: a partial allocation would surprise the caller.
			for _, in := range out {
				delete(s.st.instances, in.ID)
				s.st.releaseENIsLocked(in.ID)
			}
			return nil, fmt.Errorf("vswitch %s %s has room for %d more instances, %d requested: %w", w.ID, w.CIDR, len(out), n, ErrInvalid)
		}
		if used[a] {
			continue
		}
		in := &Instance{ID: s.newID("i-"), VSwitchID: w.ID, VPCID: w.VPCID, Zone: w.Zone, PrivateIP: a, IPv6: instanceIPv6(w, a), Status: InstanceRunning, Created: now}
		s.st.instances[in.ID] = in
		eni := s.newPrimaryENI(in, now)
		s.st.enis[eni.ID] = eni
		out = append(out, *in)
	}
	return out, nil
}

// instanceIPv6 gives an instance of an IPv6-enabled vSwitch one IPv6
// address, derived from its IPv4 address so that it is unique.
func instanceIPv6(w *VSwitch, v4 netip.Addr) []netip.Addr {
	if !w.IPv6CIDR.IsValid() {
		return nil
	}
	b := w.IPv6CIDR.Masked().Addr().As16()
	copy(b[12:], v4.AsSlice())
	return []netip.Addr{netip.AddrFrom16(b)}
}

// AddVSwitch adds a vSwitch (bound to the VPC's system table when its
// RouteTableID is empty) and its system entries.
func (s *Simulator) AddVSwitch(w VSwitch) (VSwitch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.vpcs[w.VPCID]; !ok {
		return VSwitch{}, fmt.Errorf("vpc %s: %w", w.VPCID, ErrNotFound)
	}
	if !w.CIDR.IsValid() {
		return VSwitch{}, fmt.Errorf("vswitch cidr: %w", ErrInvalid)
	}
	if w.ID == "" {
		w.ID = s.newID("vsw-")
	}
	if w.Zone == "" {
		w.Zone = DefaultZone
	}
	if w.RouteTableID == "" {
		w.RouteTableID = s.st.systemTable(w.VPCID).ID
	} else if t, ok := s.st.tables[w.RouteTableID]; !ok || t.VPCID != w.VPCID {
		return VSwitch{}, fmt.Errorf("route table %s of vpc %s: %w", w.RouteTableID, w.VPCID, ErrNotFound)
	}
	nw := w
	s.st.vswitches[w.ID] = &nw
	s.ensureSystemEntriesLocked(w.VPCID, s.clock.Now())
	return nw, nil
}

// MaxRouteTablesPerVPC is how many route tables a VPC may have: the
// system table and 9 custom tables (Alibaba's default VPC quota).
const MaxRouteTablesPerVPC = 10

func (s *Simulator) tableCountLocked(vpcID string) int {
	n := 0
	for _, t := range s.st.tables {
		if t.VPCID == vpcID {
			n++
		}
	}
	return n
}

// AddTable adds a custom route table to a VPC and binds the given vSwitches
// to it. Like every table of the VPC it holds the local system entries of
// all the VPC's vSwitches.
func (s *Simulator) AddTable(t RouteTable, vswitchIDs ...string) (RouteTable, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.vpcs[t.VPCID]; !ok {
		return RouteTable{}, fmt.Errorf("vpc %s: %w", t.VPCID, ErrNotFound)
	}
	if t.ID == "" {
		t.ID = s.newID("vtb-")
	} else if _, dup := s.st.tables[t.ID]; dup {
		return RouteTable{}, fmt.Errorf("route table %s already exists: %w", t.ID, ErrInvalid)
	}
	if t.Type == "" {
		t.Type = TableTypeCustom
	}
	if t.Type != TableTypeCustom {
		return RouteTable{}, fmt.Errorf("a VPC has exactly one system table; added tables are Custom: %w", ErrInvalid)
	}
	if n := s.tableCountLocked(t.VPCID); n >= MaxRouteTablesPerVPC {
		return RouteTable{}, fmt.Errorf("vpc %s already has %d route tables, the most a VPC may have (%s): %w", t.VPCID, n, CodeRouteTableQuotaExceeded, ErrInvalid)
	}
	for _, id := range vswitchIDs {
		if w, ok := s.st.vswitches[id]; !ok || w.VPCID != t.VPCID {
			return RouteTable{}, fmt.Errorf("vswitch %s in vpc %s: %w", id, t.VPCID, ErrNotFound)
		}
	}
	nt := t
	s.st.tables[t.ID] = &nt
	s.st.byTable[t.ID] = map[string]*RouteEntry{}
	for _, id := range vswitchIDs {
		s.st.vswitches[id].RouteTableID = t.ID
	}
	s.ensureSystemEntriesLocked(t.VPCID, s.clock.Now())
	return nt, nil
}

// SetQuota sets the custom entry quota of a route table (0: DefaultQuota).
func (s *Simulator) SetQuota(tableID string, quota int) error {
	if quota < 0 {
		return fmt.Errorf("quota %d: %w", quota, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.st.tables[tableID]
	if !ok {
		return fmt.Errorf("route table %s: %w", tableID, ErrNotFound)
	}
	t.Quota = quota
	return nil
}

// AddAccessKey adds (or replaces) a permanent access key. allowedActions
// are "Action", "product:Action", "product:*" or "*"; none means all.
func (s *Simulator) AddAccessKey(id, secret string, allowedActions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.keys[id] = &credential{AccessKey: AccessKey{ID: id, Secret: secret, AllowedActions: slices.Clone(allowedActions)}}
}

// SetAccessKeyDisabled disables or re-enables a permanent access key.
func (s *Simulator) SetAccessKeyDisabled(id string, disabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.st.keys[id]
	if !ok {
		return fmt.Errorf("access key: %w", ErrNotFound)
	}
	k.Disabled = disabled
	return nil
}

// SetBusy forces a VPC busy (every route write fails with the busy code)
// until SetBusy(vpcID, false).
func (s *Simulator) SetBusy(vpcID string, busy bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.vpcs[vpcID]; !ok {
		return fmt.Errorf("vpc %s: %w", vpcID, ErrNotFound)
	}
	if busy {
		s.st.forcedBusy[vpcID] = true
	} else {
		delete(s.st.forcedBusy, vpcID)
	}
	return nil
}

// Busy reports whether a route write is in flight in the VPC (or the VPC is
// forced busy).
func (s *Simulator) Busy(vpcID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vpcBusyLocked(vpcID, s.clock.Now())
}
