package ipam

import (
	"context"
	"fmt"
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

// crdGVR is the resource of CustomResourceDefinitions, watched in auto mode
// to learn when the SpiderIPPool CRD is installed or removed.
var crdGVR = schema.GroupVersionResource{
	Group:    "apiextensions.k8s.io",
	Version:  "v1",
	Resource: "customresourcedefinitions",
}

// newPoolInformer returns an informer on every SpiderIPPool. Its transform
// drops status.allocatedIPs (a JSON map of every pod's IP, rewritten on each
// pod start) and managed fields: the publisher never reads them, and they
// are most of an active pool's size.
func newPoolInformer(client dynamic.Interface) cache.SharedIndexInformer {
	informer := dynamicinformer.NewFilteredDynamicInformer(client, SpiderIPPoolGVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	// SetTransform only fails once the informer has started.
	_ = informer.SetTransform(trimPool)
	return informer
}

func trimPool(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		unstructured.RemoveNestedField(u.Object, "status", "allocatedIPs")
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// poolEventHandler notifies on pool changes that can change routes or
// problems: creation, deletion, any spec change, and a disabled pool's
// allocated count reaching or leaving zero. Allocation churn alone (the
// count of an enabled pool) is ignored.
func poolEventHandler(notify func()) cache.ResourceEventHandler {
	return changeHandler(notify, poolRelevantChange)
}

func poolRelevantChange(o, n *unstructured.Unstructured) bool {
	return specChanged(o, n) || poolInUse(o) != poolInUse(n)
}

func poolInUse(u *unstructured.Unstructured) bool {
	disabled, _, _ := unstructured.NestedBool(u.Object, "spec", "disable")
	count, _, _ := unstructured.NestedInt64(u.Object, "status", "allocatedIPCount")
	return !disabled || count > 0
}

// newCRDInformer watches the SpiderIPPool CRD and starts or stops the pool
// watch as the CRD comes to serve v2beta1 or goes away. When the publisher
// may not read CRDs, forbidden is set: the pool checks of auto mode are then
// skipped (and the error logged once) rather than holding up the routes of
// every node until the RBAC is fixed.
func newCRDInformer(client dynamic.Interface, pools *poolWatch, notify func(), forbidden *atomic.Bool, lastErr *lastError) (cache.SharedIndexInformer, error) {
	byName := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", SpiderIPPoolCRDName).String()
	}
	informer := dynamicinformer.NewFilteredDynamicInformer(client, crdGVR, metav1.NamespaceAll, 0, cache.Indexers{}, byName).Informer()
	// SetWatchErrorHandlerWithContext only fails once the informer has started.
	_ = informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) && !forbidden.Swap(true) {
			klog.FromContext(ctx).Error(err, "Cannot watch CustomResourceDefinitions; SpiderIPPools are not checked against node podCIDRs until customresourcedefinitions get/list/watch is allowed")
		}
		if !apierrors.IsForbidden(err) {
			// Forbidden is a deliberate RBAC choice, logged once above;
			// anything else is a failure of the pool check.
			lastErr.set(err)
		}
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	update := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || u.GetName() != SpiderIPPoolCRDName {
			return
		}
		if crdServesPools(u) {
			pools.startBase()
		} else {
			pools.stop()
		}
		notify()
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, newObj any) { update(newObj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok && u.GetName() != SpiderIPPoolCRDName {
				return
			}
			pools.stop()
			notify()
		},
	}); err != nil {
		return nil, fmt.Errorf("watching the SpiderIPPool CRD: %w", err)
	}
	return informer, nil
}

// crdServesPools reports whether the CRD is established and serves the
// version the publisher reads.
func crdServesPools(u *unstructured.Unstructured) bool {
	versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	served := false
	for _, v := range versions {
		m, ok := v.(map[string]any)
		if ok && m["name"] == SpiderIPPoolGVR.Version && m["served"] == true {
			served = true
		}
	}
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return served
		}
	}
	return false
}
