// Package upstream runs the route controller most clusters run — the one of
// k8s.io/cloud-provider (controllers/route), as embedded in every
// cloud-controller-manager — inside the benchmark's process, driving the
// project's cloudprovider.Routes adapter against the simulator, so that it
// can be measured side by side with vpc-route-publisher.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	routecontroller "k8s.io/cloud-provider/controllers/route"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"

	// The route controller reads its feature gates from the global gate;
	// this registers them (with their defaults) as a cloud-controller-manager does.
	_ "k8s.io/controller-manager/pkg/features/register"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Defaults of a cloud-controller-manager: --route-reconciliation-period and
// the client's --kube-api-qps / --kube-api-burst.
const (
	DefaultReconcilePeriod = 10 * time.Second
	DefaultKubeQPS         = 20
	DefaultKubeBurst       = 30
)

// Options configure one run of the upstream controller.
type Options struct {
	// Kube is the API server's client configuration (copied, not changed).
	Kube *rest.Config
	// Cloud are the cloud options of the adapter (endpoints, credentials,
	// rate limit), the same the publisher gets as flags.
	Cloud *cloud.Options
	// ClusterID is the ownership marker's cluster ID (and the controller's
	// cluster name).
	ClusterID string
	// ClusterCIDRs are the controller's --cluster-cidr.
	ClusterCIDRs []netip.Prefix
	// ReconcilePeriod is --route-reconciliation-period; zero means 10s.
	ReconcilePeriod time.Duration
}

// Controller is a running upstream route controller.
type Controller struct {
	cancel context.CancelFunc
	done   chan struct{}
	closed *atomic.Bool
}

// Start builds the adapter and the controller and runs it until Stop.
func Start(ctx context.Context, o Options) (*Controller, error) {
	// Every request of the controller goes through a gate that is shut when
	// the run ends: goroutines the controller leaves behind (it does not
	// wait for its own condition updates on shutdown) can then no longer
	// touch the cluster while the next contestant is measured.
	closed := &atomic.Bool{}
	cfg := rest.CopyConfig(o.Kube)
	cfg.QPS, cfg.Burst = DefaultKubeQPS, DefaultKubeBurst
	cfg.UserAgent = "cloud-controller-manager/route-controller"
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return gate{next: rt, closed: closed} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the controller's clientset: %w", err)
	}
	return start(ctx, o, client, closed)
}

func start(ctx context.Context, o Options, client kubernetes.Interface, closed *atomic.Bool) (*Controller, error) {
	if o.ReconcilePeriod == 0 {
		o.ReconcilePeriod = DefaultReconcilePeriod
	}
	if len(o.ClusterCIDRs) == 0 {
		// The controller would klog.Fatal.
		return nil, fmt.Errorf("the upstream route controller needs at least one cluster CIDR")
	}
	cidrs := make([]*net.IPNet, 0, len(o.ClusterCIDRs))
	for _, p := range o.ClusterCIDRs {
		_, n, err := net.ParseCIDR(p.String())
		if err != nil {
			return nil, fmt.Errorf("cluster CIDR %s: %w", p, err)
		}
		cidrs = append(cidrs, n)
	}

	runCtx, cancel := context.WithCancel(ctx)
	c, err := cloud.New(runCtx, o.Cloud, o.ClusterID, prometheus.NewRegistry())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connecting the adapter to the cloud: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	lister := nodes.Lister()
	adapter := c.RoutesAdapter(func(_ context.Context, name types.NodeName) (route.NodeRef, error) {
		n, err := lister.Get(string(name))
		if err != nil {
			return route.NodeRef{}, err
		}
		ref := route.NodeRef{Name: n.Name, ProviderID: n.Spec.ProviderID}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
				ref.InternalIPs = append(ref.InternalIPs, ip)
			}
		}
		return ref, nil
	})
	rc, err := routecontroller.New(adapter, client, nodes, o.ClusterID, cidrs)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("building the upstream route controller: %w", err)
	}
	factory.Start(runCtx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rc.Run(runCtx, o.ReconcilePeriod, controllersmetrics.NewControllerManagerMetrics("cloud-controller-manager"))
	}()
	return &Controller{cancel: cancel, done: done, closed: closed}, nil
}

// Stop cancels the controller, shuts its API gate and waits (bounded) for
// Run to return.
func (c *Controller) Stop(timeout time.Duration) error {
	c.closed.Store(true)
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("upstream route controller still running %v after it was stopped", timeout)
	}
}

// errGateClosed is what the controller's leftover goroutines get.
var errGateClosed = errors.New("benchmark run of the upstream controller has ended")

type gate struct {
	next   http.RoundTripper
	closed *atomic.Bool
}

func (g gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.closed.Load() {
		return nil, errGateClosed
	}
	return g.next.RoundTrip(r)
}
