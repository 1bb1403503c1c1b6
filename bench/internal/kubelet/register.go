package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
)

// Field managers of the components that write a node in a real cluster.
// Each write is attributed to its component so that managedFields look (and
// weigh) like a real cluster's.
const (
	ManagerKubelet        = "kubelet"
	ManagerNodeIPAM       = "kube-controller-manager"
	ManagerRouteResetting = "cloud-controller-manager"
)

// Registrar writes nodes the way a cluster's components do.
type Registrar struct {
	Client kubernetes.Interface
	Fleet  Fleet
	// Concurrency bounds the number of nodes being written at once.
	Concurrency int
	// Now is the clock stamped into conditions; time.Now when nil.
	Now func() time.Time
}

func (r Registrar) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Register brings the members into the cluster: the kubelet creates each
// node, the node IPAM controller assigns its pod CIDR, and the kubelet posts
// one status heartbeat (which records the kubelet's status-subresource
// managedFields entry, as in every running cluster).
func (r Registrar) Register(ctx context.Context, ms []Member) error {
	return r.parallel(ctx, len(ms), func(ctx context.Context, i int) error {
		if err := r.Join(ctx, ms[i]); err != nil {
			return err
		}
		return r.heartbeat(ctx, ms[i])
	})
}

// Join creates one node as the kubelet does and assigns its pod CIDR as the
// node IPAM controller does, right after. The node's route is due from the
// moment Join is called.
func (r Registrar) Join(ctx context.Context, m Member) error {
	node := r.Fleet.Node(m, r.now())
	if _, err := r.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{FieldManager: ManagerKubelet}); err != nil {
		return fmt.Errorf("creating node %s: %w", m.Name, err)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{
		"podCIDR":  m.PodCIDR.String(),
		"podCIDRs": []string{m.PodCIDR.String()},
	}})
	if err != nil {
		return fmt.Errorf("encoding pod CIDR patch of node %s: %w", m.Name, err)
	}
	if _, err := r.Client.CoreV1().Nodes().Patch(ctx, m.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{FieldManager: ManagerNodeIPAM}); err != nil {
		return fmt.Errorf("assigning pod CIDR %s to node %s: %w", m.PodCIDR, m.Name, err)
	}
	return nil
}

func (r Registrar) heartbeat(ctx context.Context, m Member) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"conditions": r.Fleet.heartbeat(metav1.NewTime(r.now().Truncate(time.Second))),
	}})
	if err != nil {
		return fmt.Errorf("encoding status heartbeat of node %s: %w", m.Name, err)
	}
	if _, err := r.Client.CoreV1().Nodes().Patch(ctx, m.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{FieldManager: ManagerKubelet}, "status"); err != nil {
		return fmt.Errorf("posting status heartbeat of node %s: %w", m.Name, err)
	}
	return nil
}

// MarkUnrouted sets NetworkUnavailable=True (reason NoRouteCreated) on the
// named nodes, the state a route controller leaves a node in before its route
// exists. Between two controllers under test this resets the cluster, so the
// second one has to publish every route and clear every condition itself.
func (r Registrar) MarkUnrouted(ctx context.Context, names []string) error {
	return r.parallel(ctx, len(names), func(ctx context.Context, i int) error {
		ts := metav1.NewTime(r.now())
		patch, err := json.Marshal(map[string]any{"status": map[string]any{
			"conditions": []corev1.NodeCondition{{
				Type:               corev1.NodeNetworkUnavailable,
				Status:             corev1.ConditionTrue,
				Reason:             reasonNoRouteCreated,
				Message:            messageNoRouteCreated,
				LastHeartbeatTime:  ts,
				LastTransitionTime: ts,
			}},
		}})
		if err != nil {
			return fmt.Errorf("encoding NetworkUnavailable patch of node %s: %w", names[i], err)
		}
		if _, err := r.Client.CoreV1().Nodes().Patch(ctx, names[i], types.StrategicMergePatchType, patch,
			metav1.PatchOptions{FieldManager: ManagerRouteResetting}, "status"); err != nil {
			return fmt.Errorf("marking node %s NetworkUnavailable: %w", names[i], err)
		}
		return nil
	})
}

// parallel runs fn for 0..n-1 with at most Concurrency calls in flight and
// returns every failure joined (at most maxErrors of them, plus a count).
func (r Registrar) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	const maxErrors = 5
	var (
		mu     sync.Mutex
		errs   []error
		failed int
	)
	workers := max(r.Concurrency, 1)
	workqueue.ParallelizeUntil(ctx, workers, n, func(i int) {
		if err := fn(ctx, i); err != nil {
			mu.Lock()
			defer mu.Unlock()
			failed++
			if len(errs) < maxErrors {
				errs = append(errs, err)
			}
		}
	})
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	if failed > len(errs) {
		errs = append(errs, fmt.Errorf("%d of %d writes failed in all", failed, n))
	}
	return errors.Join(errs...)
}
