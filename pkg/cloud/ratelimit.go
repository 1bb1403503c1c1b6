package cloud

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// adaptiveLimiter is the client-side rate limit every cloud API call waits
// on. It starts at the configured rate (--cloud-qps, --cloud-burst). When the
// cloud throttles us it halves the rate (multiplicative decrease, at most once
// per cutInterval so that a burst of concurrent throttled calls counts as one
// signal), and every successful call afterwards adds back a tenth of the
// configured rate (additive increase) until the configured rate is restored.
// The floor keeps progress possible: at least one call per floorPeriod.
type adaptiveLimiter struct {
	mu      sync.Mutex
	lim     *rate.Limiter
	base    rate.Limit
	floor   rate.Limit
	lastCut time.Time
	now     func() time.Time
}

const (
	cutInterval = time.Second
	floorPeriod = 5 * time.Second
)

func newAdaptiveLimiter(qps float64, burst int, now func() time.Time) *adaptiveLimiter {
	if now == nil {
		now = time.Now
	}
	base := rate.Limit(qps)
	floor := rate.Every(floorPeriod)
	if floor > base {
		floor = base
	}
	return &adaptiveLimiter{
		lim:   rate.NewLimiter(base, burst),
		base:  base,
		floor: floor,
		now:   now,
	}
}

// Wait blocks until the next call may be made or ctx is done.
func (a *adaptiveLimiter) Wait(ctx context.Context) error {
	return a.lim.Wait(ctx)
}

// Limit returns the current rate.
func (a *adaptiveLimiter) Limit() rate.Limit {
	return a.lim.Limit()
}

// Throttled lowers the rate after the cloud answered with a throttling code.
func (a *adaptiveLimiter) Throttled() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if !a.lastCut.IsZero() && now.Sub(a.lastCut) < cutInterval {
		return
	}
	next := a.lim.Limit() / 2
	if next < a.floor {
		next = a.floor
	}
	a.lim.SetLimitAt(now, next)
	a.lastCut = now
}

// Succeeded raises the rate back towards the configured one after a call the
// cloud did not throttle.
func (a *adaptiveLimiter) Succeeded() {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.lim.Limit()
	if cur >= a.base {
		return
	}
	now := a.now()
	if now.Sub(a.lastCut) < cutInterval {
		return
	}
	next := cur + a.base/10
	if next > a.base {
		next = a.base
	}
	a.lim.SetLimitAt(now, next)
}
