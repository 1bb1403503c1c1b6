package ipam

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Problem reasons of the calico source.
const (
	// ReasonInvalidCalicoObject: a BlockAffinity, IPPool or IPAMBlock
	// cannot be read.
	ReasonInvalidCalicoObject = "InvalidCalicoObject"
	// ReasonBlockWithoutPool: a confirmed block lies in no IPPool (the
	// pool was deleted while in use); it is still routed.
	ReasonBlockWithoutPool = "BlockWithoutPool"
	// ReasonBorrowedAddresses: pods of a node hold addresses of a block
	// affine to another node (or to none), which the VPC routes elsewhere.
	ReasonBorrowedAddresses = "BorrowedAddresses"
	// ReasonStrictAffinityDisabled: Calico may lend a node's block
	// addresses to another node's pods at any time.
	ReasonStrictAffinityDisabled = "StrictAffinityDisabled"
	// ReasonMixedCIDRSources: in auto mode, nodes have podCIDRs and Calico
	// has block affinities; only the podCIDRs are routed.
	ReasonMixedCIDRSources = "MixedCIDRSources"
)

// strictAffinityFix is the command that stops Calico from borrowing.
const strictAffinityFix = "calicoctl ipam configure --strictaffinity=true"

// calicoState is a snapshot of the Calico objects the source reads.
type calicoState struct {
	affinities []*unstructured.Unstructured
	pools      []*unstructured.Unstructured
	// blocks are the IPAMBlocks; blocksKnown is false when they cannot be
	// read (not served, not readable), and borrowing is then not checked.
	blocks      []*unstructured.Unstructured
	blocksKnown bool
	config      calicoConfig
}

// calicoResult is what the calico source derives from a snapshot.
type calicoResult struct {
	claims   []claim
	problems []route.Problem
	notes    []route.Note
	// blocks is the number of routed (confirmed) blocks.
	blocks int
}

// calicoClaims computes the destinations of Calico IPAM: every confirmed,
// not deleted host BlockAffinity of a pool that is not tunnelled, merged
// per node into the fewest prefixes covering exactly the node's blocks.
func calicoClaims(st calicoState, clusterCIDRs []netip.Prefix) calicoResult {
	var res calicoResult
	pools := make([]calicoPool, 0, len(st.pools))
	for _, u := range st.pools {
		p, err := decodeCalicoPool(u)
		if err != nil {
			res.problems = append(res.problems, invalidCalicoObject("IPPool/"+u.GetName(), "", err))
			continue
		}
		pools = append(pools, p)
	}
	// The most specific pool containing a block is its pool (Calico
	// forbids overlapping pools; this only makes the choice
	// deterministic).
	slices.SortFunc(pools, func(a, b calicoPool) int {
		return cmp.Or(cmp.Compare(b.cidr.Bits(), a.cidr.Bits()), strings.Compare(a.name, b.name))
	})
	poolOf := func(p netip.Prefix) (calicoPool, bool) {
		for _, pool := range pools {
			if prefixContains(pool.cidr, p) {
				return pool, true
			}
		}
		return calicoPool{}, false
	}

	// emptyBlocks are the blocks known to hold no address; only read for
	// disabled pools, whose blocks are routed while in use.
	emptyBlocks := map[netip.Prefix]bool{}
	if st.blocksKnown {
		for _, u := range st.blocks {
			if b, err := decodeBlock(u); err == nil && b.allocated == 0 {
				emptyBlocks[b.cidr] = true
			}
		}
	}
	byNode := map[string][]calicoAffinity{}
	tunnelBlocks, drained := map[string]int{}, map[string]int{}
	outside := map[string][]netip.Prefix{}
	for _, u := range st.affinities {
		a, err := decodeAffinity(u)
		if err != nil {
			res.problems = append(res.problems, invalidCalicoObject(a.object(), a.node, err))
			continue
		}
		if !a.routed() {
			continue
		}
		pool, ok := poolOf(a.cidr)
		switch {
		case !ok:
			res.problems = append(res.problems, route.Problem{
				Object: a.object(),
				Node:   a.node,
				Reason: ReasonBlockWithoutPool,
				Message: fmt.Sprintf("Block %s of node %s lies in no IPPool (deleted while in use?); it stays routed, since its pods keep their addresses until recreated. Recreate them so that Calico can release the block.",
					a.cidr, a.node),
			})
		case pool.tunnelled():
			tunnelBlocks[pool.name]++
			continue
		case !pool.workload:
			continue
		case pool.disabled && emptyBlocks[a.cidr]:
			// A disabled pool's block whose pods are gone: Calico
			// releases it later (or never, if it is the node's only
			// block), but nothing in it needs a route any more.
			drained[pool.name]++
			continue
		}
		if !inClusterCIDR(a.cidr, clusterCIDRs) {
			key := "BlockAffinity/" + a.name
			if ok {
				key = pool.object()
			}
			outside[key] = append(outside[key], a.cidr)
			continue
		}
		byNode[a.node] = append(byNode[a.node], a)
		res.blocks++
	}
	for _, object := range slices.Sorted(maps.Keys(outside)) {
		res.problems = append(res.problems, route.Problem{
			Object: object,
			Reason: ReasonOutsideClusterCIDR,
			Message: fmt.Sprintf("%s has confirmed blocks %s outside the cluster CIDRs %s; no route is published for them.",
				object, joinPrefixes(outside[object]), joinPrefixes(clusterCIDRs)),
		})
	}
	for _, p := range pools {
		switch {
		case p.tunnelled():
			res.notes = append(res.notes, route.Note{
				Object: p.object(),
				Message: fmt.Sprintf("IPPool %s (%s, %s) is tunnelled: its %d confirmed blocks need no VPC route and are not routed.",
					p.name, p.cidr, p.mode(), tunnelBlocks[p.name]),
			})
		case p.disabled && p.workload:
			res.notes = append(res.notes, route.Note{
				Object: p.object(),
				Message: fmt.Sprintf("IPPool %s (%s) is disabled: its confirmed blocks stay routed while they hold addresses (%d empty blocks are not routed).",
					p.name, p.cidr, drained[p.name]),
			})
		}
	}

	res.claims, res.notes = mergeNodeBlocks(byNode, res.notes)
	if res.blocks > 0 {
		res.notes = append(res.notes, route.Note{
			Message: fmt.Sprintf("Calico IPAM: %d confirmed blocks of %d nodes are published as %d route entries per table.",
				res.blocks, len(byNode), len(res.claims)),
		})
	}
	if res.blocks > 0 {
		res.problems = append(res.problems, borrowingProblems(st, pools)...)
		if !st.blocksKnown {
			res.notes = append(res.notes, route.Note{
				Object:  "IPAMBlock/",
				Message: "Calico's IPAMBlocks cannot be read (not served or not allowed): addresses borrowed from other nodes' blocks are not detected.",
			})
		}
		if !st.config.known {
			res.notes = append(res.notes, route.Note{
				Object:  "IPAMConfig/" + calicoConfigName,
				Message: "Calico's IPAM configuration cannot be read (not served or not allowed): whether strictAffinity is on is unknown.",
			})
		}
	}
	return res
}

func invalidCalicoObject(object, node string, err error) route.Problem {
	return route.Problem{
		Object:  object,
		Node:    node,
		Reason:  ReasonInvalidCalicoObject,
		Message: fmt.Sprintf("%s cannot be read: %v; it is not routed.", object, err),
	}
}

// mergeNodeBlocks turns each node's blocks into the fewest prefixes that
// cover exactly those blocks (see mergeSiblings), one claim per prefix, and
// notes the nodes that need more than one route entry.
func mergeNodeBlocks(byNode map[string][]calicoAffinity, notes []route.Note) ([]claim, []route.Note) {
	var claims []claim
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		affs := byNode[node]
		// The oldest affinity names the claims: overlap resolution keeps
		// the destinations of the node that claimed first.
		slices.SortFunc(affs, func(a, b calicoAffinity) int {
			return cmp.Or(a.created.Compare(b.created), strings.Compare(a.name, b.name))
		})
		blocks := make([]netip.Prefix, len(affs))
		for i, a := range affs {
			blocks[i] = a.cidr
		}
		merged := mergeSiblings(blocks)
		for _, p := range merged {
			// Name each merged prefix after the oldest of its blocks.
			for _, a := range affs {
				if prefixContains(p, a.cidr) {
					claims = append(claims, claim{object: a.object(), node: node, created: a.created, dest: p})
					break
				}
			}
		}
		if len(merged) > 1 {
			notes = append(notes, route.Note{
				Object: "Node/" + node,
				Node:   node,
				Message: fmt.Sprintf("Node %s has %d Calico blocks, published as %d route entries per table (%s).",
					node, len(blocks), len(merged), joinPrefixes(merged)),
			})
		}
	}
	return claims, notes
}

// mergeSiblings returns the fewest prefixes covering exactly the addresses
// of ps: two prefixes are merged only when they are the two halves of their
// parent, so a merged prefix never covers an address that no prefix of ps
// covered. That is deliberate: a wider prefix over pool space not yet given
// to any node would, once Calico gives a block there to another node, send
// that block's pods to this node until a later pass shrank the prefix, and
// meanwhile the other node's route would be withheld as overlapping. An
// exact merge cannot cover another node's block, present or future.
// Prefixes inside others are dropped.
func mergeSiblings(ps []netip.Prefix) []netip.Prefix {
	set := make(map[netip.Prefix]bool, len(ps))
	for _, p := range ps {
		set[p.Masked()] = true
	}
	for {
		merged := false
		for _, p := range sortedPrefixes(set) {
			if !set[p] || p.Bits() == 0 {
				continue
			}
			sib := sibling(p)
			if !set[sib] {
				continue
			}
			delete(set, p)
			delete(set, sib)
			set[netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked()] = true
			merged = true
		}
		if !merged {
			break
		}
	}
	out := sortedPrefixes(set)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	// Drop prefixes inside another one (duplicate or nested blocks).
	return slices.DeleteFunc(out, func(p netip.Prefix) bool {
		for q := range set {
			if q != p && prefixContains(q, p) {
				return true
			}
		}
		return false
	})
}

// sibling returns the other half of p's parent prefix.
func sibling(p netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	bit := p.Bits() - 1
	b[bit/8] ^= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits())
}

// sortedPrefixes returns the prefixes of the set, longest first, then by
// address, so that merging proceeds bottom-up deterministically.
func sortedPrefixes(set map[netip.Prefix]bool) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		return cmp.Or(cmp.Compare(b.Bits(), a.Bits()), a.Addr().Compare(b.Addr()))
	})
	return out
}

// borrowed is one node's addresses in blocks affine to other nodes.
type borrowed struct {
	count   int
	samples []string
}

// borrowingProblems reports the risk and the fact of borrowing. With
// strictAffinity false (the default, also when IPAMConfig "default" does
// not exist), Calico assigns addresses from any block with free addresses
// once a node cannot claim a new block (lib/ipam/ipam.go, autoAssign: "Attempting to assign %d more addresses from non-affine
// blocks"). The VPC routes a block to the node it is affine to, so a pod
// holding a borrowed address is unreachable from other nodes. Borrowed
// addresses are those whose owner node (the allocation attribute "node")
// differs from the block's host, Calico's own test
// (AllocationBlock.NonAffineAllocations).
func borrowingProblems(st calicoState, pools []calicoPool) []route.Problem {
	var problems []route.Problem
	if st.config.known && !st.config.strictAffinity {
		problems = append(problems, route.Problem{
			Object: "IPAMConfig/" + calicoConfigName,
			Reason: ReasonStrictAffinityDisabled,
			Message: fmt.Sprintf("Calico's IPAM configuration %q has strictAffinity false (or does not exist): when a node runs out of blocks, Calico hands its pods addresses of blocks affine to other nodes, and the VPC routes those addresses to the other nodes. Run %q.",
				calicoConfigName, strictAffinityFix),
		})
	}
	if !st.blocksKnown {
		return problems
	}
	routedPool := func(p netip.Prefix) bool {
		for _, pool := range pools {
			if prefixContains(pool.cidr, p) {
				return !pool.tunnelled() && pool.workload
			}
		}
		return true
	}
	byNode := map[string]*borrowed{}
	for _, u := range st.blocks {
		b, err := decodeBlock(u)
		if err != nil {
			problems = append(problems, invalidCalicoObject(b.object(), "", err))
			continue
		}
		if b.deleted || len(b.foreign) == 0 || !routedPool(b.cidr) {
			continue
		}
		owner := "node " + b.host
		if b.host == "" {
			owner = "no node"
		}
		for _, n := range slices.Sorted(maps.Keys(b.foreign)) {
			x := byNode[n]
			if x == nil {
				x = &borrowed{}
				byNode[n] = x
			}
			x.count += b.foreign[n]
			if len(x.samples) < 3 {
				x.samples = append(x.samples, fmt.Sprintf("%s in block %s of %s", b.firstForeign[n], b.cidr, owner))
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		x := byNode[n]
		problems = append(problems, route.Problem{
			Object: "Node/" + n,
			Node:   n,
			Reason: ReasonBorrowedAddresses,
			Message: fmt.Sprintf("Pods of node %s hold %d addresses borrowed from blocks not affine to it (%s); the VPC routes them to the block's node, so these pods are unreachable from other nodes. Run %q, then recreate those pods.",
				n, x.count, strings.Join(x.samples, "; "), strictAffinityFix),
		})
	}
	return problems
}
