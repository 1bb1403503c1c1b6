package alisim

import (
	"sync"
	"time"
)

// Clock is the simulator's notion of time. Entry transitions (Pending →
// Available, Deleting → gone), VPC busy windows, temporary credential expiry,
// the request timestamp window, nonce retention and throttling buckets are
// all computed from it, so a test can drive them deterministically with a
// FakeClock instead of waiting. Injected latency is always real time.
type Clock interface {
	Now() time.Time
}

// RealClock is the wall clock. It is the default.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// FakeClock is a manually advanced clock for tests. It is safe for
// concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the fake time forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the fake time to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// ScaledClock runs Factor times faster than the wall clock from the moment
// it was created: with Factor 10 a 50ms write window passes in 5ms of real
// time. It lets a demo or a benchmark model slow cloud behaviour quickly.
type ScaledClock struct {
	start  time.Time
	factor float64
}

// NewScaledClock returns a clock running factor times faster than real
// time. factor must be positive.
func NewScaledClock(factor float64) *ScaledClock {
	if factor <= 0 {
		factor = 1
	}
	return &ScaledClock{start: time.Now(), factor: factor}
}

// Wall returns the wall clock time. Request timestamps, which clients take
// from their wall clock, are checked against it rather than against the
// scaled time, which drifts away from the wall clock by design.
func (c *ScaledClock) Wall() time.Time { return time.Now() }

// Now returns the scaled time.
func (c *ScaledClock) Now() time.Time {
	elapsed := time.Since(c.start)
	return c.start.Add(time.Duration(float64(elapsed) * c.factor))
}
