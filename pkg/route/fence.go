package route

import (
	"context"
	"errors"
	"time"
)

// ErrFenced means this replica may have lost the leader lease (a renewal failed,
// or the last successful one is too old), so it must not start a write.
// Nothing is wrong with the write itself; the next leader makes it.
var ErrFenced = errors.New("leader lease may be lost: writes are fenced")

// Fence tells whether this replica may still write, and until when. It is
// what leader election knows about the lease: client-go hands the lease on
// to another replica before it cancels the old leader's context, so a
// context alone cannot keep two leaders from writing at once.
type Fence interface {
	// WriteDeadline returns the time by which a write started now must have
	// completed (the earliest moment another replica may hold the lease),
	// or an error wrapping ErrFenced when no write may start.
	WriteDeadline() (time.Time, error)
}

type fenceKey struct{}

// WithFence returns a context carrying the fence. Every write made with it
// (cloud route writes, node patches) first asks the fence, and is bounded
// by its deadline: the cloud layer reads it back with WriteDeadline.
func WithFence(ctx context.Context, f Fence) context.Context {
	if f == nil {
		return ctx
	}
	return context.WithValue(ctx, fenceKey{}, f)
}

// WriteDeadline returns the deadline of a write started now under ctx's
// fence: zero when ctx carries none (no leader election), an error wrapping
// ErrFenced when the write must not start.
func WriteDeadline(ctx context.Context) (time.Time, error) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	if !ok {
		return time.Time{}, nil
	}
	return f.WriteDeadline()
}

// WriteContext bounds ctx by the deadline of its fence. It fails with an
// error wrapping ErrFenced when no write may start. The caller must call
// the returned cancel function.
func WriteContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	deadline, err := WriteDeadline(ctx)
	if err != nil {
		return ctx, func() {}, err
	}
	if deadline.IsZero() {
		ctx, cancel := context.WithCancel(ctx)
		return ctx, cancel, nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	return ctx, cancel, nil
}
