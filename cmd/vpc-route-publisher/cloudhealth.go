package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// cloudHealth tracks whether the cloud accepts our credentials, for
// /readyz: not ready until the first connection succeeded, not ready while
// the cloud rejects the credentials, ready again after any call succeeds
// (a rotated Secret or refreshed role fixes it without a restart).
type cloudHealth struct {
	mu  sync.Mutex
	err error
}

var errNotConnected = errors.New("not connected to the cloud yet")

func newCloudHealth() *cloudHealth { return &cloudHealth{err: errNotConnected} }

// check is the readiness check.
func (h *cloudHealth) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *cloudHealth) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
}

// observe records the outcome of a call that reached the cloud. Only a
// rejection of the credentials makes the replica unready; other failures
// (throttling, a busy VPC) say nothing about the credentials.
func (h *cloudHealth) observe(err error) {
	switch {
	case err == nil:
		h.set(nil)
	case errors.Is(err, cloud.ErrPermissionDenied):
		// The credentials are accepted; the permissions check names the
		// missing action.
	case errors.Is(err, route.ErrUnauthorized):
		h.set(fmt.Errorf("credentials rejected: %w", err))
	}
}

func (h *cloudHealth) observeResults(rs []route.Result) {
	for _, r := range rs {
		h.observe(r.Err)
	}
}

// probedTable is a route.Table whose calls feed cloudHealth.
type probedTable struct {
	route.Table
	health *cloudHealth
}

var _ route.Table = probedTable{}

// Tables may answer from a cache, so only its failures count.
func (t probedTable) Tables(ctx context.Context) ([]route.TableInfo, error) {
	ts, err := t.Table.Tables(ctx)
	if err != nil {
		t.health.observe(err)
	}
	return ts, err
}

// List implements route.Table.
func (t probedTable) List(ctx context.Context) ([]route.Route, error) {
	rs, err := t.Table.List(ctx)
	t.health.observe(err)
	return rs, err
}

// Create implements route.Table.
func (t probedTable) Create(ctx context.Context, rs []route.Route) []route.Result {
	res := t.Table.Create(ctx, rs)
	t.health.observeResults(res)
	return res
}

// Delete implements route.Table.
func (t probedTable) Delete(ctx context.Context, rs []route.Route) []route.Result {
	res := t.Table.Delete(ctx, rs)
	t.health.observeResults(res)
	return res
}

// Adopt implements route.Table.
func (t probedTable) Adopt(ctx context.Context, rs []route.Route) []route.Result {
	res := t.Table.Adopt(ctx, rs)
	t.health.observeResults(res)
	return res
}

// probedInstances is a route.Instances whose rejections feed cloudHealth.
// Only failures count: InstanceID succeeds from a providerID without any
// call, so its success proves nothing about the credentials.
type probedInstances struct {
	route.Instances
	health *cloudHealth
}

var _ route.Instances = probedInstances{}

// InstanceID implements route.Instances.
func (in probedInstances) InstanceID(ctx context.Context, n route.NodeRef) (string, error) {
	id, err := in.Instances.InstanceID(ctx, n)
	if errors.Is(err, route.ErrUnauthorized) {
		in.health.observe(err)
	}
	return id, err
}

// Status implements route.Instances; without IDs it asks nothing.
func (in probedInstances) Status(ctx context.Context, ids []string) (map[string]string, error) {
	st, err := in.Instances.Status(ctx, ids)
	if err != nil || len(ids) > 0 {
		in.health.observe(err)
	}
	return st, err
}
