package route

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// excluded reports whether the node must get no route.
func (c *Controller) excluded(n *corev1.Node) bool {
	return n.Labels[c.cfg.ExcludeNodeLabel] == "true" || n.Labels[CCMExcludeNodeLabel] == "true"
}

// internalIPs returns the node's InternalIP addresses, in order.
func internalIPs(n *corev1.Node) []netip.Addr {
	var ips []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	return ips
}

// nodeRef is what the cloud needs to find the node's instance.
func nodeRef(n *corev1.Node) NodeRef {
	return NodeRef{Name: n.Name, ProviderID: n.Spec.ProviderID, InternalIPs: internalIPs(n)}
}

// resolver caches node → instance mappings. A mapping is reused while the
// node's provider ID and internal IPs are unchanged, so a steady cluster
// makes no ECS lookups; failures are not cached.
type resolver struct {
	instances Instances
	mu        sync.Mutex
	cache     map[string]resolution
}

type resolution struct {
	ref      string // providerID + IPs the mapping was made from
	instance string
}

func newResolver(i Instances) *resolver {
	return &resolver{instances: i, cache: map[string]resolution{}}
}

func refKey(n NodeRef) string {
	var b strings.Builder
	b.WriteString(n.ProviderID)
	for _, ip := range n.InternalIPs {
		b.WriteByte(',')
		b.WriteString(ip.String())
	}
	return b.String()
}

// InstanceID returns the node's instance, from the cache when possible.
func (r *resolver) InstanceID(ctx context.Context, n NodeRef) (string, error) {
	key := refKey(n)
	r.mu.Lock()
	res, ok := r.cache[n.Name]
	r.mu.Unlock()
	if ok && res.ref == key {
		return res.instance, nil
	}
	id, err := r.instances.InstanceID(ctx, n)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.cache[n.Name] = resolution{ref: key, instance: id}
	r.mu.Unlock()
	return id, nil
}

// lastKnown returns the instance the node was last mapped to, whatever
// its provider ID and addresses are now.
func (r *resolver) lastKnown(node string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.cache[node]
	return res.instance, ok
}

// forget drops the mapping of a node, e.g. when its instance was released.
func (r *resolver) forget(node string) {
	r.mu.Lock()
	delete(r.cache, node)
	r.mu.Unlock()
}

// retain drops the mappings of nodes not in keep.
func (r *resolver) retain(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range r.cache {
		if !keep[n] {
			delete(r.cache, n)
		}
	}
}

// sortedKeys returns the keys of a set in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
