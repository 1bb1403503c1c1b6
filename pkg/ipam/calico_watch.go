package ipam

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// calicoWatch runs dynamic informers on Calico's four IPAM resources in the
// group discovery chose. BlockAffinities and IPPools are required for
// routes; IPAMBlocks and the IPAM configuration only serve the borrowing
// checks, so when they are not served or not readable the source runs
// without those checks (and says so) rather than not at all.
type calicoWatch struct {
	api                                CalicoAPI
	affinities, pools, blocks, configs *calicoResource
}

// calicoResource is one watched resource.
type calicoResource struct {
	gvr      schema.GroupVersionResource
	required bool
	// informer is nil when the resource is not served.
	informer cache.SharedIndexInformer
	// forbidden is set when listing the resource is forbidden (RBAC).
	forbidden atomic.Bool
}

func newCalicoWatch(client dynamic.Interface, d CalicoDiscovery, notify func()) (*calicoWatch, error) {
	if !d.Found() {
		return nil, fmt.Errorf("the API server serves no Calico %s and %s (is Calico installed with its Kubernetes datastore?)",
			d.API.Affinities.Resource, d.API.Pools.Resource)
	}
	w := &calicoWatch{
		api:        d.API,
		affinities: &calicoResource{gvr: d.API.Affinities, required: true},
		pools:      &calicoResource{gvr: d.API.Pools, required: true},
		blocks:     &calicoResource{gvr: d.API.Blocks},
		configs:    &calicoResource{gvr: d.API.Config},
	}
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", calicoConfigName).String()
	}
	for _, r := range []struct {
		res     *calicoResource
		tweak   dynamicinformer.TweakListOptionsFunc
		trim    cache.TransformFunc
		changed func(o, n *unstructured.Unstructured) bool
	}{
		{w.affinities, nil, trimManaged, specChanged},
		{w.pools, nil, trimManaged, specChanged},
		{w.blocks, nil, trimBlock, blockChanged},
		{w.configs, byName, trimManaged, specChanged},
	} {
		if !d.Served[r.res.gvr.Resource] {
			continue
		}
		informer := dynamicinformer.NewFilteredDynamicInformer(client, r.res.gvr, metav1.NamespaceAll, 0, cache.Indexers{}, r.tweak).Informer()
		// Both setters only fail once the informer has started.
		_ = informer.SetTransform(r.trim)
		_ = informer.SetWatchErrorHandlerWithContext(forbiddenHandler(r.res))
		if _, err := informer.AddEventHandler(changeHandler(notify, r.changed)); err != nil {
			return nil, fmt.Errorf("watching %s: %w", r.res.gvr, err)
		}
		r.res.informer = informer
	}
	return w, nil
}

// forbiddenHandler records that the resource may not be listed, logging it
// once, so that the source can run without it (optional resources, auto
// mode) instead of waiting forever for a cache that cannot sync.
func forbiddenHandler(r *calicoResource) cache.WatchErrorHandlerWithContext {
	return func(ctx context.Context, refl *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) && !r.forbidden.Swap(true) {
			klog.FromContext(ctx).Error(err, "Cannot list a Calico resource; grant get/list/watch on it", "resource", r.gvr.String())
		}
		cache.DefaultWatchErrorHandler(ctx, refl, err)
	}
}

// changeHandler notifies on creation, deletion, and on updates that changed
// reports relevant (or that are not unstructured objects).
func changeHandler(notify func(), changed func(o, n *unstructured.Unstructured) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*unstructured.Unstructured)
			n, ok2 := newObj.(*unstructured.Unstructured)
			if !ok1 || !ok2 || changed(o, n) {
				notify()
			}
		},
		DeleteFunc: func(any) { notify() },
	}
}

func specChanged(o, n *unstructured.Unstructured) bool {
	oldSpec, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec")
	newSpec, _, _ := unstructured.NestedFieldNoCopy(n.Object, "spec")
	return !reflect.DeepEqual(oldSpec, newSpec)
}

// blockChanged ignores allocation churn: a block is rewritten on every pod
// start and stop, but only its affinity, its deletion, whether it is empty
// (disabled pools) and who holds its addresses matter to the routes and the
// borrowing check.
func blockChanged(o, n *unstructured.Unstructured) bool {
	a, errA := decodeBlock(o)
	b, errB := decodeBlock(n)
	if errA != nil || errB != nil {
		return true
	}
	return a.cidr != b.cidr || a.host != b.host || a.deleted != b.deleted || (a.allocated == 0) != (b.allocated == 0) ||
		!reflect.DeepEqual(a.foreign, b.foreign)
}

func trimManaged(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// trimBlock keeps of an IPAMBlock what decodeBlock reads: the free list,
// sequence numbers, handles and every attribute but the owner node are most
// of a busy block and never read.
func trimBlock(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	u.SetManagedFields(nil)
	unstructured.RemoveNestedField(u.Object, "spec", "unallocated")
	unstructured.RemoveNestedField(u.Object, "spec", "sequenceNumberForAllocation")
	attrs, found, _ := unstructured.NestedSlice(u.Object, "spec", "attributes")
	if !found {
		return u, nil
	}
	for i, a := range attrs {
		m, _ := a.(map[string]any)
		node, _, _ := unstructured.NestedString(m, "secondary", "node")
		attrs[i] = map[string]any{"secondary": map[string]any{"node": node}}
	}
	_ = unstructured.SetNestedSlice(u.Object, attrs, "spec", "attributes")
	return u, nil
}

func (w *calicoWatch) all() []*calicoResource {
	return []*calicoResource{w.affinities, w.pools, w.blocks, w.configs}
}

func (w *calicoWatch) start(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for _, r := range w.all() {
		if r.informer != nil {
			go r.informer.RunWithContext(ctx)
		}
	}
	logger.Info("Watching Calico IPAM", "apiGroup", w.api.GroupVersion(),
		"ipamBlocks", w.blocks.informer != nil, "ipamConfig", w.configs.informer != nil)
}

// synced reports whether the caches have synced, not counting optional
// resources that are not readable.
func (w *calicoWatch) synced() bool {
	for _, r := range w.all() {
		if r.informer == nil || r.informer.HasSynced() {
			continue
		}
		if r.required || !r.forbidden.Load() {
			return false
		}
	}
	return w.affinities.informer != nil && w.pools.informer != nil
}

// unavailable reports whether a required resource may not be read.
func (w *calicoWatch) unavailable() bool {
	return w.affinities.forbidden.Load() && !w.affinities.informer.HasSynced() ||
		w.pools.forbidden.Load() && !w.pools.informer.HasSynced()
}

// readable reports whether the resource's cache can be trusted.
func (r *calicoResource) readable() bool {
	return r.informer != nil && r.informer.HasSynced()
}

func (r *calicoResource) list() []*unstructured.Unstructured {
	if r.informer == nil {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, obj := range r.informer.GetStore().List() {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	return out
}

// snapshot returns the cached objects.
func (w *calicoWatch) snapshot() calicoState {
	st := calicoState{
		affinities:  w.affinities.list(),
		pools:       w.pools.list(),
		blocksKnown: w.blocks.readable(),
	}
	if st.blocksKnown {
		st.blocks = w.blocks.list()
	}
	if w.configs.readable() {
		st.config.known = true
		for _, u := range w.configs.list() {
			if u.GetName() == calicoConfigName {
				st.config.strictAffinity, _, _ = unstructured.NestedBool(u.Object, "spec", "strictAffinity")
			}
		}
	}
	return st
}
