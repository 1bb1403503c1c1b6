// Package ipam computes the desired routes of a cluster from its per-node
// IPAM, as a route.Source read from informer caches.
//
// Four modes exist (--cidr-source):
//
//   - nodes: host-local IPAM ("subnet": "usePodCidr"). Every node's
//     spec.podCIDRs (spec.podCIDR on old nodes) is routed to the node, one
//     route per family on dual-stack nodes.
//   - spiderpool: one SpiderIPPool per node (spec.nodeName: [node]). A pool
//     is routed as the smallest prefix covering its spec.ips minus
//     spec.excludeIPs when that prefix covers no IP of a pool of another
//     node, else as the exact minimal set of prefixes of its IPs. Disabled
//     pools stay routed while IPs are still allocated from them.
//   - calico: Calico IPAM (calico-ipam). Every confirmed, not deleted host
//     BlockAffinity of an IP pool that is not tunnelled (ipipMode and
//     vxlanMode Never) is routed to its node; pending and pendingDeletion
//     affinities are not. A node's blocks are merged only with their
//     sibling (two halves of one prefix, both the node's), so a merged
//     prefix never covers another node's block nor space Calico may later
//     give to another node. strictAffinity off and borrowed addresses
//     (an IPAMBlock allocation owned by another node than the block's) are
//     reported. The resources are read from crd.projectcalico.org/v1 when
//     served, else from projectcalico.org/v3, Calico's own rule.
//   - auto: the nodes' podCIDRs are routed; where the SpiderIPPool CRD is
//     installed, each per-node pool is checked to lie inside its node's
//     podCIDRs, since pods outside them would be unreachable. Where Calico
//     IPAM is served and has confirmed blocks, they are routed instead when
//     no node has a podCIDR; with both, the podCIDRs are routed and the mix
//     is reported (MixedCIDRSources), never resolved silently.
//
// SpiderIPPools are read with a dynamic informer, without Spiderpool's Go
// module. Pools whose spec.subnet is disjoint from every cluster CIDR belong
// to other networks (for example underlay pools of secondary interfaces) and
// are ignored.
//
// Anything wrong with one object is a route.Problem on that object and never
// blocks the routes of other nodes. Two nodes never get overlapping
// destinations: the oldest claimant (creation timestamp, then name) keeps
// the destination and every later overlapping claim is withheld and
// reported with reason OverlappingDestination, naming the holder.
package ipam
