// Package route is the vocabulary and the decision logic of vpc-route-publisher:
// what a route is, who owns it, and how the desired routes of a cluster are
// reconciled with the entries present in the VPC route tables.
//
// The package does no cloud I/O. The cloud side is reached through the small
// Table and Instances interfaces declared here and implemented by pkg/cloud;
// the desired side through Source, implemented by pkg/ipam.
//
// Diff is the pure decision; Controller runs it in a client-go loop (one
// whole-cluster work key, coalesced events, periodic resync) and Audit
// reports the same plan without writing. Decisions worth knowing:
//
//   - Ownership: an entry is ours only with our cluster ID in its marker, an
//     Instance next hop and a destination inside a cluster CIDR. Nothing
//     else is ever modified or deleted; foreign entries on a desired
//     destination are conflicts.
//   - Safety valve, by cause of deletion: routes of deleted nodes (and of
//     released instances) are bounded per pass, so nodes deleted one at a
//     time are never held while most nodes vanishing at once trips it;
//     routes of nodes that still exist but are no longer desired are
//     bounded over a sliding window (--safety-valve-window), so a source
//     failing in steps cannot wipe the tables either. Creates proceed.
//   - Unresolvable nodes (no providerID yet, ECS lookup failing) get no new
//     route and keep only the owned entries whose marker names them (and
//     their last known instance): a lookup failure is never a reason to
//     delete a route, nor to inherit another node's. Kept entries are not
//     verified, so they never count as published.
//   - Blackholes: an owned entry routed to a released instance is deleted
//     (the node gets no route). Released means left out of
//     Instances.Status, which implementations do only on proof, never on
//     one empty answer; an instance whose absence is not proven yet is
//     InstanceAbsent, kept and reported; one routed to a stopped instance is kept and
//     reported, since the instance keeps its identity and may start again.
//   - Node condition: NetworkUnavailable=False/RouteCreated once the node's
//     routes are Available in every table, unless it is already False;
//     True/NoRouteCreated when a route failed, conflicts or is withheld, only
//     if the condition is absent or was set by us. A NotReady node keeps its
//     route; an excluded node gets none.
package route

import (
	"context"
	"net/netip"
)

// Entry statuses as reported by the VPC API. An entry is only usable by the
// VPC router once it is Available.
const (
	StatusPending   = "Pending"
	StatusAvailable = "Available"
	StatusModifying = "Modifying"
	StatusDeleting  = "Deleting"
)

// Route is one custom route entry: pod CIDR → ECS instance, in one route table.
//
// On the desired side Table, Destination, NextHop and Node are set. On the
// current side (as listed from the cloud) every field is filled in from the
// entry; Node and Owner come from the ownership marker and are empty for
// entries the publisher did not create.
type Route struct {
	// Table is the route table ID, e.g. vtb-2ze....
	Table string `json:"table,omitempty"`
	// Destination is the pod CIDR, IPv4 or IPv6, always masked.
	Destination netip.Prefix `json:"destination"`
	// NextHop is the ECS instance ID the destination is routed to (or, for
	// entries of another next-hop type, that next hop's ID).
	NextHop string `json:"nextHop,omitempty"`
	// NextHopType is the cloud's next-hop type (current side only). The
	// publisher only ever writes and owns NextHopInstance entries; empty is
	// read as NextHopInstance.
	NextHopType string `json:"nextHopType,omitempty"`
	// Node is the Kubernetes node name: from the source on the desired side,
	// from the ownership marker on the current side.
	Node string `json:"node,omitempty"`
	// Owner is the cluster ID read from the ownership marker; empty when the
	// entry carries no marker of ours.
	Owner string `json:"owner,omitempty"`
	// EntryID is the cloud's route entry ID (current side only).
	EntryID string `json:"entryID,omitempty"`
	// Status is the cloud's entry status (current side only).
	Status string `json:"status,omitempty"`
	// Cause is why an owned entry is deleted (plan deletions only): one of
	// the Cause* constants.
	Cause string `json:"cause,omitempty"`
}

// NextHopInstance is the next-hop type of an entry routed to an ECS
// instance, the only type the publisher writes.
const NextHopInstance = "Instance"

// IsInstance reports whether the entry routes to an ECS instance.
func (r Route) IsInstance() bool { return r.NextHopType == "" || r.NextHopType == NextHopInstance }

// String renders the route for logs and messages.
func (r Route) String() string {
	s := r.Destination.String() + " -> " + r.NextHop
	if r.Table != "" {
		s += " in " + r.Table
	}
	return s
}

// Key identifies a route slot: a destination in a table. At most one entry
// can exist per key in a VPC route table.
type Key struct {
	Table       string
	Destination netip.Prefix
}

// Key returns the slot this route occupies.
func (r Route) Key() Key { return Key{Table: r.Table, Destination: r.Destination} }

// Result is the outcome of one entry of a batched cloud write.
type Result struct {
	// Route is the route as written; on success its EntryID and Status are
	// filled in from the cloud.
	Route Route
	// Err is nil on success. Otherwise it wraps one of the error classes of
	// pkg/cloud (throttled, conflict, quota, ...) so callers can use errors.Is.
	Err error
}

// TableInfo describes one route table the publisher programs.
type TableInfo struct {
	ID   string `json:"id"`
	VPC  string `json:"vpc,omitempty"`
	Type string `json:"type,omitempty"` // System or Custom
	// Quota is the maximum number of custom entries the table accepts.
	Quota int `json:"quota,omitempty"`
}

// Table is the cloud side of the reconciliation: the selected route tables
// of one VPC. Implementations serialize writes per VPC, batch them, and wait
// until written entries are Available (or gone) before returning.
type Table interface {
	// Tables returns the route tables every node route must be written to.
	Tables(ctx context.Context) ([]TableInfo, error)
	// List returns every custom entry of the selected tables.
	List(ctx context.Context) ([]Route, error)
	// Create writes the routes, carrying the ownership marker of policy's cluster.
	Create(ctx context.Context, rs []Route) []Result
	// Delete removes the routes, identified by table, destination and next hop.
	Delete(ctx context.Context, rs []Route) []Result
	// Adopt stamps the ownership marker onto existing unmarked entries.
	Adopt(ctx context.Context, rs []Route) []Result
}

// Instance states as reported by ECS DescribeInstances, and InstanceAbsent.
const (
	InstanceRunning = "Running"
	InstanceStopped = "Stopped"
	// InstanceAbsent is reported by Instances.Status for an instance that
	// ECS did not list but whose release is not proven (permissions not
	// proven, or missing for less than the release grace). It counts as
	// existing: its routes stay.
	InstanceAbsent = "Absent"
)

// NodeRef is what the cloud needs to know about a node to find its instance.
type NodeRef struct {
	Name        string
	ProviderID  string
	InternalIPs []netip.Addr
}

// Instances maps nodes to ECS instances and reports instance health.
type Instances interface {
	// InstanceID returns the ECS instance ID of the node: from its
	// providerID, or by looking its InternalIP up in ECS. It returns an
	// error wrapping ErrNoInstance when the node cannot be mapped yet.
	InstanceID(ctx context.Context, n NodeRef) (string, error)
	// Status returns the status of each instance that still exists, keyed by
	// instance ID. IDs missing from the result have been released: an
	// implementation leaves an ID out only on proof, never on one empty
	// answer (see InstanceAbsent).
	Status(ctx context.Context, ids []string) (map[string]string, error)
}

// Problem is something wrong with one Kubernetes object that keeps it from
// getting a correct route. Problems are reported (event, metric, audit line)
// and never block the other nodes.
type Problem struct {
	// Object names the object, as kind/name, e.g. Node/cn-chengdu.i-2vcxxr.
	Object string `json:"object"`
	// Node is the node concerned, when there is one.
	Node string `json:"node,omitempty"`
	// Reason is a short CamelCase reason, usable as an event reason and a
	// metric label (bounded set).
	Reason string `json:"reason"`
	// Message is a full sentence for humans.
	Message string `json:"message"`
}

// Source produces the desired routes of the cluster, without Table and
// NextHop: the controller fills in the instance of each node and expands
// each route into every selected table.
type Source interface {
	Routes(ctx context.Context) ([]Route, []Problem, error)
}

// Note is a fact about the desired state worth showing in the audit that
// needs no action: how a source chose or shaped its routes (for example
// the route entries a node's address blocks were merged into). Unlike a
// Problem it is not drift and does not fail the audit.
type Note struct {
	// Object names the object, as kind/name, when there is one.
	Object string `json:"object,omitempty"`
	// Node is the node concerned, when there is one.
	Node string `json:"node,omitempty"`
	// Message is a full sentence for humans.
	Message string `json:"message"`
}

// NoteSource is implemented by sources that explain their routes. Notes
// returns the notes of the latest Routes call.
type NoteSource interface {
	Notes() []Note
}
