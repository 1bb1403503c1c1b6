package alisim

import (
	"fmt"
	"time"
)

// LatencyModel is how long the simulated VPC takes over a route write: a
// write of n entries keeps the VPC busy for WriteBase + n × WritePerEntry,
// and its entries stay Pending (Deleting, Modifying) for that long or for
// EntryPending, whichever is longer.
type LatencyModel struct {
	WriteBase     time.Duration
	WritePerEntry time.Duration
	EntryPending  time.Duration
}

// Busy is how long one write of n entries keeps the VPC busy.
func (m LatencyModel) Busy(n int) time.Duration {
	return m.WriteBase + time.Duration(n)*m.WritePerEntry
}

// Settle is how long after a write of n entries starts they are Available.
func (m LatencyModel) Settle(n int) time.Duration {
	return max(m.Busy(n), m.EntryPending)
}

// Named latency profiles.
//
// ProfileFast is the simulator's default: writes are quick enough for unit
// tests, the e2e suite and the demo, and entries settle when the VPC is
// free again.
//
// ProfileRealistic follows what the real service and its most careful
// clients show. The route write reference pages say a route write "cannot
// be repeated within a specific period of time"; Terraform's
// alicloud_route_entry sleeps 7 s (rising) between delete retries with the
// comment that a route entry cannot be created or deleted "within 5 seconds
// frequently", retries creates every 3 s, polls entries to Available every
// 5 s (alicloud_vpc_route_entry) and allows them 2 minutes
// (DefaultTimeout). So a write keeps the VPC busy for 5 s, a 50-entry
// batch 1 s more (the per-entry cost is not published: chosen), and
// entries stay Pending 10 s, two of Terraform's 5 s polls, after the VPC
// already takes the next write.
const (
	ProfileFast      = "fast"
	ProfileRealistic = "realistic"
)

var profiles = map[string]LatencyModel{
	ProfileFast:      {WriteBase: defaultWriteBase, WritePerEntry: defaultWritePerEntry},
	ProfileRealistic: {WriteBase: 5 * time.Second, WritePerEntry: 20 * time.Millisecond, EntryPending: 10 * time.Second},
}

// Profiles lists the profile names.
func Profiles() []string { return sortedKeys(profiles) }

// Profile returns the latency model of a named profile.
func Profile(name string) (LatencyModel, error) {
	m, ok := profiles[name]
	if !ok {
		return LatencyModel{}, fmt.Errorf("latency profile %q: want one of %v: %w", name, Profiles(), ErrInvalid)
	}
	return m, nil
}

// ApplyProfile fills the zero latency fields of opts from the named
// profile; fields already set (explicit knobs) win.
func (o *Options) ApplyProfile(name string) error {
	m, err := Profile(name)
	if err != nil {
		return err
	}
	if o.WriteBase == 0 {
		o.WriteBase = m.WriteBase
	}
	if o.WritePerEntry == 0 {
		o.WritePerEntry = m.WritePerEntry
	}
	if o.EntryPending == 0 {
		o.EntryPending = m.EntryPending
	}
	return nil
}
