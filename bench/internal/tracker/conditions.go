// Package tracker observes what users feel: when each node's route is
// Available in the cloud and when its NetworkUnavailable condition is
// cleared, and waits for a whole fleet to get there.
package tracker

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Conditions follows the NetworkUnavailable condition of every node through
// an informer that keeps nothing else, so that the benchmark's own memory
// and CPU stay small next to the controllers it measures.
type Conditions struct {
	mu sync.Mutex
	// clearedAt is when each node was first seen with
	// NetworkUnavailable=False since it was last seen True (or created).
	clearedAt map[string]time.Time
	// unrouted is the set of nodes last seen with the condition True or
	// absent.
	unrouted map[string]bool
	now      func() time.Time
}

// StartConditions starts the informer and waits for its first sync.
func StartConditions(ctx context.Context, client kubernetes.Interface) (*Conditions, error) {
	c := &Conditions{clearedAt: map[string]time.Time{}, unrouted: map[string]bool{}, now: time.Now}
	factory := informers.NewSharedInformerFactory(client, 0)
	inf := factory.Core().V1().Nodes().Informer()
	if err := inf.SetTransform(slim); err != nil {
		return nil, fmt.Errorf("setting the node informer's transform: %w", err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.observe(obj) },
		UpdateFunc: func(_, obj any) { c.observe(obj) },
		DeleteFunc: func(obj any) { c.forget(obj) },
	}); err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("node informer did not sync: %w", context.Cause(ctx))
	}
	return c, nil
}

// slim keeps a node's name and its NetworkUnavailable condition only.
func slim(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	out := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, ResourceVersion: n.ResourceVersion}}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeNetworkUnavailable {
			out.Status.Conditions = []corev1.NodeCondition{{Type: cond.Type, Status: cond.Status, Reason: cond.Reason}}
		}
	}
	return out, nil
}

func (c *Conditions) observe(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	cleared := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeNetworkUnavailable && cond.Status == corev1.ConditionFalse {
			cleared = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cleared {
		c.unrouted[n.Name] = true
		delete(c.clearedAt, n.Name)
		return
	}
	delete(c.unrouted, n.Name)
	if _, seen := c.clearedAt[n.Name]; !seen {
		c.clearedAt[n.Name] = c.now()
	}
}

func (c *Conditions) forget(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.clearedAt, n.Name)
	delete(c.unrouted, n.Name)
}

// ClearedAt returns when the node's NetworkUnavailable was seen turning
// False, and whether it is False now.
func (c *Conditions) ClearedAt(name string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.clearedAt[name]
	return t, ok
}

// Unrouted reports whether the node is known with NetworkUnavailable True
// (or without the condition).
func (c *Conditions) Unrouted(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unrouted[name]
}
