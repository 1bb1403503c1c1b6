package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// stubLock is a lease lock whose calls fail on demand.
type stubLock struct {
	resourcelock.Interface
	err error
}

func (s *stubLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	return &resourcelock.LeaderElectionRecord{}, nil, s.err
}
func (s *stubLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return s.err }
func (s *stubLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return s.err }

// TestLeaseFence: writes may start only after a successful renewal of
// ours, stop at the first failed renewal or once the last success is a
// renew deadline old, and are bounded by the lease duration counted from
// the start of that renewal.
func TestLeaseFence(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newLeaseFence("me", 15*time.Second, 10*time.Second)
	f.now = func() time.Time { return now }
	inner := &stubLock{}
	lock := fencedLock{Interface: inner, fence: f}
	ctx := context.Background()
	ours := resourcelock.LeaderElectionRecord{HolderIdentity: "me"}

	if _, err := f.WriteDeadline(); !errors.Is(err, route.ErrFenced) {
		t.Errorf("before acquiring: %v, want ErrFenced", err)
	}
	if err := lock.Create(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if d, err := f.WriteDeadline(); err != nil || !d.Equal(now.Add(15*time.Second)) {
		t.Errorf("after acquiring: %v, %v; want the lease duration from the acquisition", d, err)
	}
	now = now.Add(9 * time.Second)
	if _, err := f.WriteDeadline(); err != nil {
		t.Errorf("9s after the renewal: %v, want open", err)
	}
	now = now.Add(time.Second)
	if _, err := f.WriteDeadline(); !errors.Is(err, route.ErrFenced) {
		t.Errorf("a renew deadline after the last renewal: %v, want ErrFenced", err)
	}
	if err := lock.Update(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteDeadline(); err != nil {
		t.Errorf("after a renewal: %v, want open", err)
	}
	inner.err = errors.New("apiserver unreachable")
	if _, _, err := lock.Get(ctx); err == nil {
		t.Fatal("stub did not fail")
	}
	if _, err := f.WriteDeadline(); !errors.Is(err, route.ErrFenced) {
		t.Errorf("after a failed renewal: %v, want ErrFenced at once", err)
	}
	inner.err = nil
	if err := lock.Update(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteDeadline(); !errors.Is(err, route.ErrFenced) {
		t.Errorf("after releasing the lease: %v, want ErrFenced", err)
	}
}
