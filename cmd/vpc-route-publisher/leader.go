package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// election is the leader election configuration of run.
type election struct {
	client        kubernetes.Interface
	namespace     string
	name          string
	identity      string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
	// fence, when set, learns of every renewal (see leaseFence).
	fence *leaseFence
}

// leaseIdentity names this replica in the Lease: the host (the pod name in
// a cluster) plus a random suffix, so that a restarted pod is a new holder.
func leaseIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = name
	}
	return host + "_" + string(uuid.NewUUID())
}

// runLeading runs work while this replica holds the lease, as client-go's
// leader election example does (Lease lock, ReleaseOnCancel, work started
// in OnStartedLeading), until ctx is cancelled. A replica that loses the
// lease stops its work, waits for it to return and campaigns again; its
// caches stay warm meanwhile.
//
// On cancellation the lease is released only after work has returned:
// client-go would release it as soon as the election's context ends, while
// the in-flight batch of writes may still be running, and the next leader
// could then write concurrently.
func runLeading(ctx context.Context, e election, work func(context.Context) error) error {
	logger := klog.FromContext(ctx).WithValues("lease", e.namespace+"/"+e.name, "identity", e.identity)
	ctx = klog.NewContext(ctx, logger)
	var lock resourcelock.Interface = &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.namespace, Name: e.name},
		Client:     e.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
	}
	if e.fence != nil {
		lock = fencedLock{Interface: lock, fence: e.fence}
	}
	for {
		var (
			mu      sync.Mutex
			working chan struct{} // closed when the current work returns
			workErr error
		)
		// electionCtx outlives ctx until work has returned.
		electionCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.leaseDuration,
			RenewDeadline:   e.renewDeadline,
			RetryPeriod:     e.retryPeriod,
			ReleaseOnCancel: true,
			Name:            e.name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(leadCtx context.Context) {
					mu.Lock()
					if ctx.Err() != nil || leadCtx.Err() != nil {
						mu.Unlock()
						return
					}
					done := make(chan struct{})
					working = done
					mu.Unlock()
					defer close(done)
					logger.Info("Started leading")
					workCtx, cancel := context.WithCancel(leadCtx)
					defer cancel()
					stop := context.AfterFunc(ctx, cancel)
					defer stop()
					err := work(workCtx)
					mu.Lock()
					workErr = err
					mu.Unlock()
					if leadCtx.Err() == nil && ctx.Err() == nil {
						// The work ended on its own: give the lease up
						// rather than hold it idle.
						logger.Error(err, "Route controller stopped while leading; releasing the lease")
						stopElection()
					}
				},
				OnStoppedLeading: func() {
					logger.Info("Stopped leading")
				},
				OnNewLeader: func(identity string) {
					if identity != e.identity {
						logger.Info("Following", "leader", identity)
					}
				},
			},
		})
		if err != nil {
			stopElection()
			return fmt.Errorf("configuring leader election: %w", err)
		}
		// On shutdown: wait for the work, then end the election, which
		// releases the lease.
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			select {
			case <-ctx.Done():
			case <-electionCtx.Done():
				return
			}
			mu.Lock()
			done := working
			mu.Unlock()
			if done != nil {
				<-done
			}
			stopElection()
		}()
		elector.Run(electionCtx)
		stopElection()
		<-watchDone
		mu.Lock()
		done, err := working, workErr
		mu.Unlock()
		if done != nil {
			<-done
			mu.Lock()
			err = workErr
			mu.Unlock()
		}
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		}
		logger.Info("Not leading any more; campaigning again")
		// Pause before campaigning, so that work failing at once does not
		// spin through the lease.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.retryPeriod):
		}
	}
}
