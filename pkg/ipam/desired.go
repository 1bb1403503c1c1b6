package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Problem reasons reported by the sources. They are event reasons and the
// values of the reason label of the problems metric, so the set is closed.
const (
	// ReasonInvalidCIDR: a node's podCIDR is not a valid CIDR.
	ReasonInvalidCIDR = "InvalidCIDR"
	// ReasonInvalidPool: a SpiderIPPool's subnet or IPs cannot be read.
	ReasonInvalidPool = "InvalidPool"
	// ReasonOutsideClusterCIDR: a destination lies outside every
	// --cluster-cidr, so the publisher would not own its route.
	ReasonOutsideClusterCIDR = route.ReasonOutsideClusterCIDR
	// ReasonOverlappingDestination: a destination overlaps the destination
	// another node claimed first.
	ReasonOverlappingDestination = "OverlappingDestination"
	// ReasonPoolOutsidePodCIDR: a SpiderIPPool hands out IPs outside its
	// node's podCIDRs, which are the only routed addresses in auto mode.
	ReasonPoolOutsidePodCIDR = "PoolOutsidePodCIDR"
	// ReasonPoolNotPinned: a SpiderIPPool names zero or several nodes in
	// spec.nodeName, so no single next hop exists for its addresses.
	ReasonPoolNotPinned = "PoolNotPinned"
	// ReasonPoolNodeNotFound: a SpiderIPPool names a node that does not exist.
	ReasonPoolNodeNotFound = "PoolNodeNotFound"
	// ReasonPoolCheckFailed: in auto mode, the SpiderIPPools (or their CRD)
	// cannot be listed, so the pools are not checked against the nodes'
	// podCIDRs. The routes, which come from the nodes, still publish.
	ReasonPoolCheckFailed = "PoolCheckFailed"
)

// claim is one destination a node asks for, with the object it comes from.
type claim struct {
	object  string
	node    string
	created time.Time
	dest    netip.Prefix
}

// compareClaims orders claims by age, oldest first, then by object name and
// destination, so that overlap resolution is deterministic.
func compareClaims(a, b claim) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return cmp.Or(
		strings.Compare(a.object, b.object),
		a.dest.Addr().Compare(b.dest.Addr()),
		cmp.Compare(a.dest.Bits(), b.dest.Bits()),
	)
}

// resolve turns claims into routes. Two nodes must never route overlapping
// destinations: the VPC would send part of one node's pods to the other. The
// rule is first come, first served: claims are taken oldest object first
// (creation timestamp, then name), and a claim overlapping a destination
// already taken by another node is withheld and reported on its own object,
// naming the holder. A node that has been working keeps its route when a
// misconfigured newcomer collides with it, and the outcome does not depend
// on informer order. Duplicate claims of the same node are merged.
func resolve(claims []claim) ([]route.Route, []route.Problem) {
	slices.SortFunc(claims, compareClaims)
	index := newOverlapIndex(len(claims))
	seen := make(map[string]map[netip.Prefix]bool)
	// Withheld claims, grouped by object: one problem per object.
	withheld := make(map[string][]string)
	withheldNode := make(map[string]string)
	var order []string
	for _, c := range claims {
		if seen[c.node][c.dest] {
			continue
		}
		if holder, conflict := index.firstOverlap(c); conflict {
			if _, ok := withheld[c.object]; !ok {
				order = append(order, c.object)
			}
			withheld[c.object] = append(withheld[c.object],
				fmt.Sprintf("%s overlaps %s of node %s (from %s)", c.dest, holder.dest, holder.node, holder.object))
			withheldNode[c.object] = c.node
			continue
		}
		index.take(c)
		if seen[c.node] == nil {
			seen[c.node] = make(map[netip.Prefix]bool)
		}
		seen[c.node][c.dest] = true
	}
	problems := make([]route.Problem, 0, len(order))
	for _, object := range order {
		node := withheldNode[object]
		problems = append(problems, route.Problem{
			Object: object,
			Node:   node,
			Reason: ReasonOverlappingDestination,
			Message: fmt.Sprintf("%s claims destinations for node %s that other nodes claimed first (%s); no route is published for them.",
				object, node, strings.Join(withheld[object], "; ")),
		})
	}
	routes := make([]route.Route, 0, len(index.taken))
	for _, c := range index.taken {
		routes = append(routes, route.Route{Node: c.node, Destination: c.dest})
	}
	sortRoutes(routes)
	return routes, problems
}

// overlapIndex holds the claims taken so far and finds the first one of
// another node that overlaps a new claim, without comparing it with every
// taken claim (a pass over 5000 nodes would cost 12.5 million comparisons).
// Two prefixes overlap exactly when one contains the other, so a claim is
// indexed under its own prefix (found by the claims it contains) and under
// every prefix containing it (found by the claims inside it).
type overlapIndex struct {
	taken  []claim
	exact  map[netip.Prefix]holders
	within map[netip.Prefix]holders
}

func newOverlapIndex(claims int) *overlapIndex {
	// Sibling pod CIDRs share most of their containing prefixes: about two
	// keys per claim in within.
	return &overlapIndex{exact: make(map[netip.Prefix]holders, claims), within: make(map[netip.Prefix]holders, 2*claims)}
}

// holders are, as positions in taken plus one (0: none), the first claim
// under a key and the first one of another node: whatever the node of a new
// claim, one of the two is the earliest claim of another node under the key.
type holders struct{ first, other int }

// take adds c to the taken claims.
func (x *overlapIndex) take(c claim) {
	x.taken = append(x.taken, c)
	pos := len(x.taken)
	put := func(m map[netip.Prefix]holders, k netip.Prefix) {
		h := m[k]
		switch {
		case h.first == 0:
			h.first = pos
		case h.other == 0 && x.taken[h.first-1].node != c.node:
			h.other = pos
		default:
			return
		}
		m[k] = h
	}
	put(x.exact, c.dest)
	for bits := 0; bits <= c.dest.Bits(); bits++ {
		put(x.within, netip.PrefixFrom(c.dest.Addr(), bits).Masked())
	}
}

// firstOverlap returns the earliest taken claim of another node whose
// destination overlaps c's.
func (x *overlapIndex) firstOverlap(c claim) (claim, bool) {
	best := 0
	consider := func(h holders) {
		pos := h.first
		if pos != 0 && x.taken[pos-1].node == c.node {
			pos = h.other
		}
		if pos != 0 && (best == 0 || pos < best) {
			best = pos
		}
	}
	consider(x.within[c.dest]) // taken claims inside c, or equal to it
	for bits := 0; bits < c.dest.Bits(); bits++ {
		consider(x.exact[netip.PrefixFrom(c.dest.Addr(), bits).Masked()]) // taken claims containing c
	}
	if best == 0 {
		return claim{}, false
	}
	return x.taken[best-1], true
}

func sortRoutes(rs []route.Route) {
	slices.SortFunc(rs, func(a, b route.Route) int {
		return cmp.Or(
			strings.Compare(a.Node, b.Node),
			a.Destination.Addr().Compare(b.Destination.Addr()),
			cmp.Compare(a.Destination.Bits(), b.Destination.Bits()),
		)
	})
}

func sortProblems(ps []route.Problem) {
	slices.SortFunc(ps, func(a, b route.Problem) int {
		return cmp.Or(
			strings.Compare(a.Object, b.Object),
			strings.Compare(a.Reason, b.Reason),
			strings.Compare(a.Message, b.Message),
		)
	})
}

// inClusterCIDR reports whether the destination lies inside one of the
// cluster CIDRs, the ownership guard of the publisher.
func inClusterCIDR(dest netip.Prefix, clusterCIDRs []netip.Prefix) bool {
	for _, c := range clusterCIDRs {
		if prefixContains(c, dest) {
			return true
		}
	}
	return false
}

// overlapsClusterCIDR reports whether any address of p is in a cluster CIDR.
func overlapsClusterCIDR(p netip.Prefix, clusterCIDRs []netip.Prefix) bool {
	for _, c := range clusterCIDRs {
		if c.Overlaps(p) {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// nodePodCIDRs returns the pod CIDRs a node is allocated: spec.podCIDRs (one
// per family on dual-stack nodes), or the legacy spec.podCIDR when the list
// is empty. Invalid entries come back as problems.
func nodePodCIDRs(n *corev1.Node) ([]netip.Prefix, []route.Problem) {
	raw := n.Spec.PodCIDRs
	if len(raw) == 0 && n.Spec.PodCIDR != "" {
		raw = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	var problems []route.Problem
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			problems = append(problems, route.Problem{
				Object:  "Node/" + n.Name,
				Node:    n.Name,
				Reason:  ReasonInvalidCIDR,
				Message: fmt.Sprintf("Node %s has podCIDR %q, which is not a valid CIDR: %v; no route is published for it.", n.Name, s, err),
			})
			continue
		}
		out = append(out, p.Masked())
	}
	return out, problems
}

// nodeClaims returns the destinations of host-local IPAM: every node's pod
// CIDRs that lie inside the cluster CIDRs.
func nodeClaims(nodes []*corev1.Node, clusterCIDRs []netip.Prefix) ([]claim, []route.Problem) {
	var claims []claim
	var problems []route.Problem
	for _, n := range nodes {
		cidrs, ps := nodePodCIDRs(n)
		problems = append(problems, ps...)
		for _, p := range cidrs {
			if !inClusterCIDR(p, clusterCIDRs) {
				problems = append(problems, route.Problem{
					Object: "Node/" + n.Name,
					Node:   n.Name,
					Reason: ReasonOutsideClusterCIDR,
					Message: fmt.Sprintf("Node %s podCIDR %s is outside the cluster CIDRs %s; no route is published for it.",
						n.Name, p, joinPrefixes(clusterCIDRs)),
				})
				continue
			}
			claims = append(claims, claim{object: "Node/" + n.Name, node: n.Name, created: n.CreationTimestamp.Time, dest: p})
		}
	}
	return claims, problems
}

// poolSet is the decoded SpiderIPPools of the cluster: the valid ones and a
// problem for each one that could not be read.
type poolSet struct {
	pools    []pool
	problems []route.Problem
}

// routable reports whether a pool needs a route (or a check) from the
// publisher: it is valid, in use, and its subnet overlaps a cluster CIDR.
// Pools of other networks (e.g. underlay pools of secondary interfaces) are
// outside the publisher's scope and ignored.
func routable(p pool, clusterCIDRs []netip.Prefix) bool {
	return p.inUse && overlapsClusterCIDR(p.subnet, clusterCIDRs)
}

// pinnedNode checks that a routable pool names exactly one existing node.
func pinnedNode(p pool, nodeExists func(string) bool) (string, *route.Problem) {
	node, ok := p.node()
	if !ok {
		return "", &route.Problem{
			Object: p.object(),
			Reason: ReasonPoolNotPinned,
			Message: fmt.Sprintf("SpiderIPPool %s names %d nodes in spec.nodeName (%s); it must name exactly one node to be routed.",
				p.name, len(p.nodes), strings.Join(p.nodes, ",")),
		}
	}
	if !nodeExists(node) {
		return "", &route.Problem{
			Object:  p.object(),
			Node:    node,
			Reason:  ReasonPoolNodeNotFound,
			Message: fmt.Sprintf("SpiderIPPool %s is pinned to node %s, which does not exist; no route is published for it.", p.name, node),
		}
	}
	return node, nil
}

// pinnedPool is a routable pool with IPs and the one existing node it is
// pinned to.
type pinnedPool struct {
	pool pool
	node string
}

// pinnedPools returns the routable pools with IPs that are pinned to one
// existing node, and the problems of the set and of the other routable pools.
func pinnedPools(set poolSet, nodeExists func(string) bool, clusterCIDRs []netip.Prefix) ([]pinnedPool, []route.Problem) {
	problems := slices.Clone(set.problems)
	var pinned []pinnedPool
	for _, p := range set.pools {
		if !routable(p, clusterCIDRs) || len(p.ranges) == 0 {
			continue
		}
		node, problem := pinnedNode(p, nodeExists)
		if problem != nil {
			problems = append(problems, *problem)
			continue
		}
		pinned = append(pinned, pinnedPool{pool: p, node: node})
	}
	return pinned, problems
}

// poolClaims returns the destinations of Spiderpool IPAM. A pool's
// destination is the smallest prefix covering its IPs, which keeps the route
// table small, unless that prefix would also cover IPs of a pool that is not
// exclusively this node's (or would leave the cluster CIDRs); then it is the
// exact, minimal set of prefixes of its IPs.
func poolClaims(set poolSet, nodeExists func(string) bool, clusterCIDRs []netip.Prefix) ([]claim, []route.Problem) {
	pinned, problems := pinnedPools(set, nodeExists, clusterCIDRs)
	var claims []claim
	for _, pp := range pinned {
		p, node := pp.pool, pp.node
		var outside []netip.Prefix
		for _, dest := range poolDestinations(p, node, set.pools, clusterCIDRs) {
			if !inClusterCIDR(dest, clusterCIDRs) {
				outside = append(outside, dest)
				continue
			}
			claims = append(claims, claim{object: p.object(), node: node, created: p.created, dest: dest})
		}
		if len(outside) > 0 {
			problems = append(problems, route.Problem{
				Object: p.object(),
				Node:   node,
				Reason: ReasonOutsideClusterCIDR,
				Message: fmt.Sprintf("SpiderIPPool %s has IPs in %s, outside the cluster CIDRs %s; no route is published for them.",
					p.name, joinPrefixes(outside), joinPrefixes(clusterCIDRs)),
			})
		}
	}
	return claims, problems
}

// poolDestinations chooses the prefixes routed for one pool of node.
func poolDestinations(p pool, node string, all []pool, clusterCIDRs []netip.Prefix) []netip.Prefix {
	cover := coveringPrefix(p.ranges)
	if !inClusterCIDR(cover, clusterCIDRs) {
		return rangePrefixes(p.ranges)
	}
	coverRange := prefixRange(cover)
	for _, other := range all {
		if other.name == p.name {
			continue
		}
		if n, ok := other.node(); ok && n == node {
			continue
		}
		for _, r := range other.ranges {
			if coverRange.overlaps(r) {
				return rangePrefixes(p.ranges)
			}
		}
	}
	return []netip.Prefix{cover}
}

// validatePools checks, in auto mode, that every routable pool lies inside
// the pod CIDRs of its node: those are what gets routed, so a pod given an
// IP outside them would be unreachable from other nodes.
func validatePools(set poolSet, podCIDRs map[string][]netip.Prefix, clusterCIDRs []netip.Prefix) []route.Problem {
	pinned, problems := pinnedPools(set, func(n string) bool { _, ok := podCIDRs[n]; return ok }, clusterCIDRs)
	for _, pp := range pinned {
		p, node := pp.pool, pp.node
		var outside []string
		for _, r := range p.ranges {
			if !rangeInPrefixes(r, podCIDRs[node]) {
				outside = append(outside, r.String())
			}
		}
		if len(outside) == 0 {
			continue
		}
		podCIDRText := joinPrefixes(podCIDRs[node])
		if podCIDRText == "" {
			podCIDRText = "none"
		}
		problems = append(problems, route.Problem{
			Object: p.object(),
			Node:   node,
			Reason: ReasonPoolOutsidePodCIDR,
			Message: fmt.Sprintf("SpiderIPPool %s hands out %s, outside the podCIDRs of node %s (%s); pods with those IPs are unreachable from other nodes.",
				p.name, strings.Join(outside, ","), node, podCIDRText),
		})
	}
	return problems
}

// rangeInPrefixes reports whether the range lies inside one of the prefixes.
// A range spanning two adjacent prefixes is reported as outside, which is
// conservative: podCIDRs of one family are a single prefix in practice.
func rangeInPrefixes(r ipRange, ps []netip.Prefix) bool {
	for _, p := range ps {
		if prefixRange(p).contains(r) {
			return true
		}
	}
	return false
}
