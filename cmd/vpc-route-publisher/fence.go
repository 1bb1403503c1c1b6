package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// leaseFence is the route.Fence of a replica, fed by its lease lock. client-go
// hands the lease on before it cancels the old leader's context (a renewal
// that hangs keeps the old leader working for up to retry period + 2 × renew
// deadline, while a follower may take over after the lease duration), so the
// leader's context alone cannot stop its writes in time. The fence can: a
// write may start only while the last renewal succeeded less than the renew
// deadline ago, and must complete before the lease duration counted from the
// start of that renewal — the earliest moment a follower, which starts its
// clock when it observes the renewal, can take the lease over.
type leaseFence struct {
	identity      string
	leaseDuration time.Duration
	renewDeadline time.Duration
	now           func() time.Time

	mu sync.Mutex
	// renewed is when the last successful acquisition or renewal started;
	// zero while not leading or since a renewal failed.
	renewed time.Time
}

var _ route.Fence = (*leaseFence)(nil)

func newLeaseFence(identity string, leaseDuration, renewDeadline time.Duration) *leaseFence {
	return &leaseFence{identity: identity, leaseDuration: leaseDuration, renewDeadline: renewDeadline, now: time.Now}
}

// WriteDeadline implements route.Fence.
func (f *leaseFence) WriteDeadline() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renewed.IsZero() {
		return time.Time{}, fmt.Errorf("%w: the lease is not held, or its last renewal failed", route.ErrFenced)
	}
	if age := f.now().Sub(f.renewed); age >= f.renewDeadline {
		return time.Time{}, fmt.Errorf("%w: the lease was last renewed %v ago (renew deadline %v)", route.ErrFenced, age.Round(time.Millisecond), f.renewDeadline)
	}
	return f.renewed.Add(f.leaseDuration), nil
}

// observe records the outcome of a write of the lease record started at
// start: a renewal of ours opens the fence, anything else closes it.
func (f *leaseFence) observe(start time.Time, ler resourcelock.LeaderElectionRecord, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil || ler.HolderIdentity != f.identity {
		f.renewed = time.Time{}
		return
	}
	f.renewed = start
}

// close closes the fence until the next successful renewal.
func (f *leaseFence) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewed = time.Time{}
}

// fencedLock is the lease lock, reporting every read and write of the lease
// record to the fence.
type fencedLock struct {
	resourcelock.Interface
	fence *leaseFence
}

func (l fencedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r, raw, err := l.Interface.Get(ctx)
	if err != nil {
		// A renewal begins with a read; failing it is a failed renewal.
		l.fence.close()
	}
	return r, raw, err
}

func (l fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.fence.now()
	err := l.Interface.Create(ctx, ler)
	l.fence.observe(start, ler, err)
	return err
}

func (l fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	start := l.fence.now()
	err := l.Interface.Update(ctx, ler)
	l.fence.observe(start, ler, err)
	return err
}
