package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// CalicoAPI names the four Calico resources the calico source reads, in one
// API group. Calico's Kubernetes datastore stores them as
// crd.projectcalico.org/v1 custom resources; newer releases can store them
// as projectcalico.org/v3 custom resources instead. Both carry the same
// field names, except that BlockAffinity's spec.deleted is a string in v1
// ("true"/"false") and a boolean in v3, and that IPAMConfig is called
// IPAMConfiguration in v3.
type CalicoAPI struct {
	Affinities schema.GroupVersionResource
	Pools      schema.GroupVersionResource
	Blocks     schema.GroupVersionResource
	Config     schema.GroupVersionResource
}

// The two groups Calico serves its IPAM resources in.
var (
	CalicoV1 = calicoAPI("crd.projectcalico.org", "v1", "ipamconfigs")
	CalicoV3 = calicoAPI("projectcalico.org", "v3", "ipamconfigurations")
)

func calicoAPI(group, version, config string) CalicoAPI {
	gvr := func(resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
	}
	return CalicoAPI{
		Affinities: gvr("blockaffinities"),
		Pools:      gvr("ippools"),
		Blocks:     gvr("ipamblocks"),
		Config:     gvr(config),
	}
}

// GroupVersion is the API group and version of the resources.
func (a CalicoAPI) GroupVersion() string { return a.Affinities.GroupVersion().String() }

func (a CalicoAPI) resources() []schema.GroupVersionResource {
	return []schema.GroupVersionResource{a.Affinities, a.Pools, a.Blocks, a.Config}
}

// calicoConfigName is the name of Calico's one IPAM configuration object
// (model.IPAMConfigGlobalName in libcalico-go).
const calicoConfigName = "default"

// CalicoDiscovery is what the API server serves of Calico's IPAM.
type CalicoDiscovery struct {
	// API is the group the source reads.
	API CalicoAPI
	// Served tells, by resource, which of the four are served in API's
	// group. BlockAffinities and IPPools are required; without IPAMBlocks
	// or the IPAM configuration, borrowing cannot be detected.
	Served map[string]bool
}

// Found reports whether the resources needed for routes are served.
func (d CalicoDiscovery) Found() bool {
	return d.Served[d.API.Affinities.Resource] && d.Served[d.API.Pools.Resource]
}

// DiscoverCalico asks the API server which group serves Calico's IPAM
// resources, with Calico's own rule (libcalico-go
// lib/backend/k8s/discovery.go, UsingV3CRDs): crd.projectcalico.org/v1
// whenever it is served (when both are, projectcalico.org/v3 is Calico's
// aggregated API server in front of the v1 resources), projectcalico.org/v3
// only when v1 is absent. Reading the v1 resources directly also keeps the
// publisher independent of the aggregated API server's availability.
func DiscoverCalico(d discovery.DiscoveryInterface) (CalicoDiscovery, error) {
	v1, err := servedResources(d, CalicoV1)
	if err != nil {
		return CalicoDiscovery{}, err
	}
	if v1[CalicoV1.Affinities.Resource] {
		return CalicoDiscovery{API: CalicoV1, Served: v1}, nil
	}
	v3, err := servedResources(d, CalicoV3)
	if err != nil {
		return CalicoDiscovery{}, err
	}
	if v3[CalicoV3.Affinities.Resource] {
		return CalicoDiscovery{API: CalicoV3, Served: v3}, nil
	}
	return CalicoDiscovery{API: CalicoV1, Served: v1}, nil
}

func servedResources(d discovery.DiscoveryInterface, api CalicoAPI) (map[string]bool, error) {
	served := map[string]bool{}
	list, err := d.ServerResourcesForGroupVersion(api.GroupVersion())
	if apierrors.IsNotFound(err) {
		return served, nil
	}
	if err != nil {
		return nil, fmt.Errorf("discovering %s: %w", api.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		for _, want := range api.resources() {
			if r.Name == want.Resource {
				served[r.Name] = true
			}
		}
	}
	return served, nil
}

// Block affinity states (libcalico-go lib/backend/model/block_affinity.go).
// Calico writes an affinity pending, claims the block, then confirms it
// (lib/ipam/ipam_block_reader_writer.go, claimAffineBlock and
// confirmAffinity); releasing marks it pendingDeletion before deleting the
// block and the affinity (releaseBlockAffinity).
const (
	affinityConfirmed       = "confirmed"
	affinityPending         = "pending"
	affinityPendingDeletion = "pendingDeletion"
)

// calicoAffinity is a decoded BlockAffinity.
type calicoAffinity struct {
	name    string
	created time.Time
	node    string
	cidr    netip.Prefix
	state   string
	// kind is spec.type: "host" (or empty, the default) for a node's
	// blocks, "virtual" for blocks of virtual hosts (e.g. load-balancer
	// addresses), which are not pods of a node.
	kind    string
	deleted bool
}

func (a calicoAffinity) object() string { return "BlockAffinity/" + a.name }

// routed reports whether the affinity stands for a node's confirmed block.
func (a calicoAffinity) routed() bool {
	return a.state == affinityConfirmed && !a.deleted && (a.kind == "" || a.kind == "host")
}

func decodeAffinity(u *unstructured.Unstructured) (calicoAffinity, error) {
	a := calicoAffinity{name: u.GetName(), created: u.GetCreationTimestamp().Time}
	a.node, _, _ = unstructured.NestedString(u.Object, "spec", "node")
	a.state, _, _ = unstructured.NestedString(u.Object, "spec", "state")
	a.kind, _, _ = unstructured.NestedString(u.Object, "spec", "type")
	deleted, err := calicoBool(u.Object, "spec", "deleted")
	if err != nil {
		return a, err
	}
	a.deleted = deleted
	cidr, err := calicoPrefix(u.Object, "spec", "cidr")
	if err != nil {
		return a, err
	}
	a.cidr = cidr
	if a.node == "" {
		return a, errors.New("spec.node is empty")
	}
	return a, nil
}

// calicoBool reads a boolean that crd.projectcalico.org/v1 stores as a
// string for compatibility with old releases (internalapi.BlockAffinitySpec
// Deleted; Calico parses it with strconv.ParseBool, empty meaning false).
func calicoBool(obj map[string]any, fields ...string) (bool, error) {
	v, found, _ := unstructured.NestedFieldNoCopy(obj, fields...)
	if !found || v == nil {
		return false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if x == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("%s: %w", strings.Join(fields, "."), err)
		}
		return b, nil
	default:
		return false, fmt.Errorf("%s: want a boolean, got %T", strings.Join(fields, "."), v)
	}
}

func calicoPrefix(obj map[string]any, fields ...string) (netip.Prefix, error) {
	s, _, _ := unstructured.NestedString(obj, fields...)
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("%s is empty", strings.Join(fields, "."))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: %w", strings.Join(fields, "."), err)
	}
	return p.Masked(), nil
}

// calicoPool is a decoded IPPool.
type calicoPool struct {
	name      string
	cidr      netip.Prefix
	ipipMode  string
	vxlanMode string
	disabled  bool
	// workload: the pool hands out pod addresses (allowedUses empty, the
	// default of ["Workload", "Tunnel"], or naming Workload).
	workload bool
}

func (p calicoPool) object() string { return "IPPool/" + p.name }

// tunnelled reports whether the pool's traffic is encapsulated (IPIP or
// VXLAN, Always or CrossSubnet), so the VPC never sees its pod addresses.
// Calico reads an empty mode as Never (lib/clientv3/ippool.go,
// convertIpPoolFromStorage).
func (p calicoPool) tunnelled() bool {
	return (p.ipipMode != "" && p.ipipMode != "Never") || (p.vxlanMode != "" && p.vxlanMode != "Never")
}

func (p calicoPool) mode() string {
	return fmt.Sprintf("ipipMode %s, vxlanMode %s", orNever(p.ipipMode), orNever(p.vxlanMode))
}

func orNever(s string) string {
	if s == "" {
		return "Never"
	}
	return s
}

func decodeCalicoPool(u *unstructured.Unstructured) (calicoPool, error) {
	p := calicoPool{name: u.GetName()}
	p.ipipMode, _, _ = unstructured.NestedString(u.Object, "spec", "ipipMode")
	p.vxlanMode, _, _ = unstructured.NestedString(u.Object, "spec", "vxlanMode")
	p.disabled, _, _ = unstructured.NestedBool(u.Object, "spec", "disabled")
	uses, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "allowedUses")
	p.workload = len(uses) == 0 || slices.Contains(uses, "Workload")
	cidr, err := calicoPrefix(u.Object, "spec", "cidr")
	if err != nil {
		return p, err
	}
	p.cidr = cidr
	return p, nil
}

// calicoBlock is what the publisher keeps of an IPAMBlock: its affinity and
// the nodes its allocations belong to.
type calicoBlock struct {
	name    string
	cidr    netip.Prefix
	host    string // from spec.affinity "host:<node>"; empty when not affine to a host
	deleted bool
	// allocated counts the allocated addresses.
	allocated int
	// foreign counts, by node, the addresses allocated to pods of another
	// node than the block's host: borrowed addresses.
	foreign map[string]int
	// firstForeign is one borrowed address per node, for messages.
	firstForeign map[string]netip.Addr
}

func (b calicoBlock) object() string { return "IPAMBlock/" + b.name }

// decodeBlock reads an IPAMBlock. An allocation's owner node is
// attributes[allocations[i]].secondary.node (AllocationAttribute's
// ActiveOwnerAttrs, key "node"); Calico's own check for borrowed addresses,
// AllocationBlock.NonAffineAllocations in lib/backend/model/block.go,
// compares it with the block's host the same way.
func decodeBlock(u *unstructured.Unstructured) (calicoBlock, error) {
	b := calicoBlock{name: u.GetName()}
	affinity, _, _ := unstructured.NestedString(u.Object, "spec", "affinity")
	if h, ok := strings.CutPrefix(affinity, "host:"); ok {
		b.host = h
	}
	b.deleted, _ = calicoBool(u.Object, "spec", "deleted")
	cidr, err := calicoPrefix(u.Object, "spec", "cidr")
	if err != nil {
		return b, err
	}
	b.cidr = cidr
	allocations, _, _ := unstructured.NestedSlice(u.Object, "spec", "allocations")
	attributes, _, _ := unstructured.NestedSlice(u.Object, "spec", "attributes")
	for ordinal, v := range allocations {
		idx, ok := calicoInt(v)
		if !ok {
			continue // nil: free
		}
		b.allocated++
		if idx < 0 || idx >= len(attributes) {
			continue
		}
		attr, _ := attributes[idx].(map[string]any)
		owner, _, _ := unstructured.NestedString(attr, "secondary", "node")
		if owner == "" || owner == b.host {
			continue
		}
		if b.foreign == nil {
			b.foreign, b.firstForeign = map[string]int{}, map[string]netip.Addr{}
		}
		if b.foreign[owner] == 0 {
			b.firstForeign[owner] = nthAddr(b.cidr, ordinal)
		}
		b.foreign[owner]++
	}
	return b, nil
}

func calicoInt(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		return int(x), true
	case int:
		return x, true
	case float64:
		return int(x), true
	default:
		return 0, false
	}
}

// nthAddr is the address at ordinal n of the prefix (Calico's OrdinalToIP).
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	b := a.AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := int(b[i]) + carry
		b[i] = byte(sum)
		carry = sum >> 8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// calicoConfig is the IPAM configuration's strictAffinity. Calico reads a
// missing configuration as strictAffinity false (lib/ipam/ipam.go,
// GetIPAMConfig).
type calicoConfig struct {
	strictAffinity bool
	// known is false when the configuration could not be read at all
	// (resource not served or not readable).
	known bool
}
