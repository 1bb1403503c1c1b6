package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SpiderIPPoolGVR is the resource of Spiderpool's per-node IP pools. The
// publisher reads them as unstructured objects so that it does not depend on
// Spiderpool's Go module; only the fields declared below are read.
var SpiderIPPoolGVR = schema.GroupVersionResource{
	Group:    "spiderpool.spidernet.io",
	Version:  "v2beta1",
	Resource: "spiderippools",
}

// SpiderIPPoolCRDName is the name of the SpiderIPPool CustomResourceDefinition.
const SpiderIPPoolCRDName = "spiderippools.spiderpool.spidernet.io"

// spiderIPPool holds the fields of a SpiderIPPool the publisher reads, with
// the JSON names of the v2beta1 schema.
type spiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              spiderIPPoolSpec   `json:"spec"`
	Status            spiderIPPoolStatus `json:"status,omitempty"`
}

type spiderIPPoolSpec struct {
	IPVersion  *int64   `json:"ipVersion,omitempty"`
	Subnet     string   `json:"subnet"`
	IPs        []string `json:"ips,omitempty"`
	ExcludeIPs []string `json:"excludeIPs,omitempty"`
	NodeName   []string `json:"nodeName,omitempty"`
	Disable    bool     `json:"disable,omitempty"`
}

type spiderIPPoolStatus struct {
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// pool is a decoded, validated SpiderIPPool.
type pool struct {
	name    string
	created time.Time
	// nodes is spec.nodeName as written: a pool is routable only when it
	// names exactly one node.
	nodes  []string
	subnet netip.Prefix
	// ranges are spec.ips minus spec.excludeIPs, normalized.
	ranges []ipRange
	// inUse is false for a disabled pool that has no allocated IP left:
	// such a pool needs no route.
	inUse bool
}

func (p pool) object() string { return "SpiderIPPool/" + p.name }

// node returns the single node the pool is pinned to, if it is pinned to
// exactly one.
func (p pool) node() (string, bool) {
	if len(p.nodes) != 1 || p.nodes[0] == "" {
		return "", false
	}
	return p.nodes[0], true
}

// decodePool reads a SpiderIPPool from its unstructured form. The name and
// creation time are returned even when the spec is invalid, so that the
// problem can be attributed.
func decodePool(u *unstructured.Unstructured) (pool, error) {
	p := pool{name: u.GetName(), created: u.GetCreationTimestamp().Time}
	var obj spiderIPPool
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &obj); err != nil {
		return p, fmt.Errorf("decoding: %w", err)
	}
	p.nodes = obj.Spec.NodeName
	allocated := obj.Status.AllocatedIPCount != nil && *obj.Status.AllocatedIPCount > 0
	p.inUse = !obj.Spec.Disable || allocated

	if obj.Spec.Subnet == "" {
		return p, errors.New("spec.subnet is empty")
	}
	subnet, err := netip.ParsePrefix(obj.Spec.Subnet)
	if err != nil {
		return p, fmt.Errorf("spec.subnet: %w", err)
	}
	p.subnet = subnet.Masked()
	if v := obj.Spec.IPVersion; v != nil {
		want := int64(6)
		if p.subnet.Addr().Is4() {
			want = 4
		}
		if *v != want {
			return p, fmt.Errorf("spec.ipVersion is %d but spec.subnet %s is IPv%d", *v, obj.Spec.Subnet, want)
		}
	}

	include, err := parseRangesIn(obj.Spec.IPs, p.subnet, "spec.ips")
	if err != nil {
		return p, err
	}
	exclude, err := parseRangesIn(obj.Spec.ExcludeIPs, p.subnet, "spec.excludeIPs")
	if err != nil {
		return p, err
	}
	p.ranges = subtractRanges(include, exclude)
	return p, nil
}

// parseRangesIn parses a list of IP ranges that must all lie in subnet.
func parseRangesIn(entries []string, subnet netip.Prefix, field string) ([]ipRange, error) {
	all := prefixRange(subnet)
	out := make([]ipRange, 0, len(entries))
	for i, s := range entries {
		r, err := parseIPRange(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		if r.first.Is4() != all.first.Is4() || !all.contains(r) {
			return nil, fmt.Errorf("%s[%d]: %s is outside spec.subnet %s", field, i, r, subnet)
		}
		out = append(out, r)
	}
	return out, nil
}
