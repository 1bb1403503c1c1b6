// Package kubelet builds Node objects shaped like the ones a real cluster
// holds — written by the kubelet, the node IPAM controller and the kubelet's
// status heartbeats, with their managedFields — and registers them with
// bounded concurrency. The benchmark needs realistic objects: a controller's
// memory is dominated by its node cache, so bare stubs would make every
// memory figure meaningless.
package kubelet

import (
	"fmt"
	"net/netip"
)

// Member is one node of the simulated fleet: its name, its ECS instance, its
// primary address and the pod CIDR the node IPAM controller assigns to it.
type Member struct {
	Index      int
	Name       string
	InstanceID string
	InternalIP netip.Addr
	PodCIDR    netip.Prefix
}

// Fleet describes where the simulated nodes live. Members are derived from
// their index alone, so the simulator's instances and the Kubernetes nodes
// always agree without sharing state.
type Fleet struct {
	// Region names the nodes (<region>.<instance-id>) and their providerID.
	Region string
	// Zone is the topology zone label.
	Zone string
	// NodeCIDR holds the nodes' internal IPs (a vSwitch).
	NodeCIDR netip.Prefix
	// ClusterCIDR is carved into one /PodMaskBits pod CIDR per node.
	ClusterCIDR netip.Prefix
	// PodMaskBits is the size of each node's pod CIDR (24 as kube-controller-manager's default).
	PodMaskBits int
	// KubeletVersion is reported in nodeInfo.
	KubeletVersion string
}

// Validate reports whether the fleet can hold n nodes.
func (f Fleet) Validate(n int) error {
	if f.Region == "" || f.Zone == "" {
		return fmt.Errorf("fleet needs a region and a zone")
	}
	if !f.NodeCIDR.Addr().Is4() || !f.ClusterCIDR.Addr().Is4() {
		return fmt.Errorf("fleet CIDRs must be IPv4: node CIDR %s, cluster CIDR %s", f.NodeCIDR, f.ClusterCIDR)
	}
	if hosts := 1<<(32-f.NodeCIDR.Bits()) - 2; n > hosts {
		return fmt.Errorf("node CIDR %s has room for %d nodes, %d requested", f.NodeCIDR, hosts, n)
	}
	if f.PodMaskBits < f.ClusterCIDR.Bits() || f.PodMaskBits > 30 {
		return fmt.Errorf("pod CIDR size /%d does not fit in cluster CIDR %s", f.PodMaskBits, f.ClusterCIDR)
	}
	if blocks := 1 << (f.PodMaskBits - f.ClusterCIDR.Bits()); n > blocks {
		return fmt.Errorf("cluster CIDR %s has room for %d /%d pod CIDRs, %d requested", f.ClusterCIDR, blocks, f.PodMaskBits, n)
	}
	return nil
}

// Member returns the i-th node of the fleet (0-based). The caller validates
// the fleet for the largest index first.
func (f Fleet) Member(i int) Member {
	id := fmt.Sprintf("i-2vcbench%012d", i)
	return Member{
		Index:      i,
		Name:       f.Region + "." + id,
		InstanceID: id,
		InternalIP: addIPv4(f.NodeCIDR.Masked().Addr(), uint32(i)+1),
		PodCIDR:    netip.PrefixFrom(addIPv4(f.ClusterCIDR.Masked().Addr(), uint32(i)<<(32-f.PodMaskBits)), f.PodMaskBits),
	}
}

// Members returns the nodes with indexes [from, to).
func (f Fleet) Members(from, to int) []Member {
	ms := make([]Member, 0, to-from)
	for i := from; i < to; i++ {
		ms = append(ms, f.Member(i))
	}
	return ms
}

// ProviderID is the node's spec.providerID as the Alibaba CCM writes it.
func (f Fleet) ProviderID(m Member) string {
	return f.Region + "." + m.InstanceID
}

func addIPv4(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
