package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// NodeLookup returns what is needed to find a node's ECS instance. The
// adapter uses it, when set, to read the node's providerID from a lister.
type NodeLookup func(ctx context.Context, name types.NodeName) (route.NodeRef, error)

// RoutesAdapter implements the k8s.io/cloud-provider Routes interface on top
// of Tables and Instances, so that the upstream route controller
// (k8s.io/cloud-provider/controllers/route) can drive the same cloud layer.
// It behaves like the Alibaba CCM's implementation: one route per node pod
// CIDR, written into every selected route table, named after the node, with
// TargetNode mapped to the ECS instance through the node's providerID.
//
// Unlike the CCM it lists only entries carrying this cluster's ownership
// marker, and a route counts as present only when it is in every table, so
// that the controller re-creates it where it is missing.
type RoutesAdapter struct {
	tables    *Tables
	instances *Instances
	lookup    NodeLookup
}

var _ cloudprovider.Routes = (*RoutesAdapter)(nil)

// RoutesAdapter returns the k8s.io/cloud-provider Routes adapter. lookup may
// be nil: node names are then read as "<region>.<instance-id>" (the Alibaba
// naming) and, failing that, the route's TargetNodeAddresses are looked up
// in ECS.
func (c *Cloud) RoutesAdapter(lookup NodeLookup) *RoutesAdapter {
	return &RoutesAdapter{tables: c.tables, instances: c.instances, lookup: lookup}
}

// ListRoutes lists the routes of this cluster present in every selected
// table. The clusterName argument is ignored: ownership is decided by the
// cluster ID the Cloud was built with, which is also what CreateRoute
// writes.
func (a *RoutesAdapter) ListRoutes(ctx context.Context, _ string) ([]*cloudprovider.Route, error) {
	tables, err := a.tables.Tables(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := a.tables.List(ctx)
	if err != nil {
		return nil, err
	}
	type slot struct {
		node, nextHop string
		tables        int
		consistent    bool
	}
	byDst := map[netip.Prefix]*slot{}
	var order []netip.Prefix
	for _, e := range entries {
		if e.Owner != a.tables.clusterID {
			continue
		}
		s, ok := byDst[e.Destination]
		if !ok {
			s = &slot{node: e.Node, nextHop: e.NextHop, consistent: true}
			byDst[e.Destination] = s
			order = append(order, e.Destination)
		}
		if s.node != e.Node || s.nextHop != e.NextHop {
			s.consistent = false
		}
		s.tables++
	}
	out := make([]*cloudprovider.Route, 0, len(order))
	for _, dst := range order {
		s := byDst[dst]
		if !s.consistent || s.tables < len(tables) {
			continue
		}
		out = append(out, &cloudprovider.Route{
			Name:            entryName(s.node) + "-" + dst.String(),
			TargetNode:      types.NodeName(s.node),
			DestinationCIDR: dst.String(),
		})
	}
	return out, nil
}

// CreateRoute writes the route into every selected table and waits until it
// is Available. An identical entry already present counts as created. The
// nameHint (the node UID, from the upstream controller) is not used: the
// entry is named after the node, as the ownership marker is.
func (a *RoutesAdapter) CreateRoute(ctx context.Context, _ string, _ string, r *cloudprovider.Route) error {
	dst, err := netip.ParsePrefix(r.DestinationCIDR)
	if err != nil {
		return fmt.Errorf("route for node %s: destination %q: %w", r.TargetNode, r.DestinationCIDR, route.ErrInvalid)
	}
	instanceID, err := a.instanceID(ctx, r)
	if err != nil {
		return err
	}
	tables, err := a.tables.Tables(ctx)
	if err != nil {
		return err
	}
	want := map[string][]netip.Prefix{}
	for _, t := range tables {
		want[t.ID] = []netip.Prefix{dst.Masked()}
	}
	have, err := a.tables.snapshot(ctx, want)
	if err != nil {
		return err
	}
	var rs []route.Route
	for _, t := range tables {
		want := route.Route{Table: t.ID, Destination: dst.Masked(), NextHop: instanceID, Node: string(r.TargetNode)}
		if cur, ok := have[want.Key()]; ok && cur.NextHop == instanceID && cur.Owner == a.tables.clusterID {
			continue
		}
		rs = append(rs, want)
	}
	var errs []error
	for _, res := range a.tables.Create(ctx, rs) {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}

// DeleteRoute removes this cluster's entries for the route's destination
// from every selected table. A route already gone is not an error.
func (a *RoutesAdapter) DeleteRoute(ctx context.Context, _ string, r *cloudprovider.Route) error {
	dst, err := netip.ParsePrefix(r.DestinationCIDR)
	if err != nil {
		return fmt.Errorf("route for node %s: destination %q: %w", r.TargetNode, r.DestinationCIDR, route.ErrInvalid)
	}
	dst = dst.Masked()
	tables, err := a.tables.Tables(ctx)
	if err != nil {
		return err
	}
	want := map[string][]netip.Prefix{}
	for _, t := range tables {
		want[t.ID] = []netip.Prefix{dst}
	}
	current, err := a.tables.snapshot(ctx, want)
	if err != nil {
		return err
	}
	var rs []route.Route
	for _, c := range current {
		if c.Owner == a.tables.clusterID {
			rs = append(rs, c)
		}
	}
	var errs []error
	for _, res := range a.tables.Delete(ctx, rs) {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}

// instanceID maps the route's target node to its ECS instance.
func (a *RoutesAdapter) instanceID(ctx context.Context, r *cloudprovider.Route) (string, error) {
	ref := route.NodeRef{Name: string(r.TargetNode)}
	if a.lookup != nil {
		var err error
		if ref, err = a.lookup(ctx, r.TargetNode); err != nil {
			return "", fmt.Errorf("looking up node %s: %w", r.TargetNode, err)
		}
	}
	if ref.ProviderID == "" {
		// Alibaba node names are "<region>.<instance-id>", the same form
		// as the providerID.
		ref.ProviderID = string(r.TargetNode)
	}
	if len(ref.InternalIPs) == 0 {
		for _, addr := range r.TargetNodeAddresses {
			if addr.Type != v1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(addr.Address); err == nil {
				ref.InternalIPs = append(ref.InternalIPs, ip)
			}
		}
	}
	return a.instances.InstanceID(ctx, ref)
}
