package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/ipam"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// configError is a failure the configuration must fix (exit code 2), as
// opposed to a runtime failure (exit code 1).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer, e env) int {
	o := newRunOptions(e.getenv)
	fs := o.flagSet()
	src, code, done := parseFlags(fs, o.loggingFlags(), args, e.environ(), "run", stdout, stderr)
	if done {
		return code
	}
	o.onceDefaults(fs)
	v, err := o.validate()
	if err != nil {
		usageError(stderr, "run", src.explain(err))
		return exitUsage
	}
	if ctx, err = e.applyLogging(ctx, o.logging); err != nil {
		usageError(stderr, "run", src.explain(err))
		return exitUsage
	}
	clients, err := e.clients(o.kubeconfig, "")
	if err != nil {
		usageError(stderr, "run", src.explain(err))
		return exitUsage
	}
	if err := runController(ctx, o, v, clients, e); err != nil {
		if errors.As(err, new(configError)) {
			usageError(stderr, "run", src.explain(err))
			return exitUsage
		}
		fmt.Fprintf(stderr, "%s run: %s.\n", name, strings.TrimSuffix(err.Error(), "."))
		return exitFailure
	}
	return exitOK
}

// runController runs the publisher until ctx is cancelled. It returns nil
// after a clean shutdown.
func runController(ctx context.Context, o *runOptions, v validated, c *kubeClients, e env) (err error) {
	logger := klog.FromContext(ctx)
	logger.Info("Starting", "version", version.Get(), "cidrSource", v.mode, "clusterID", v.cfg.Policy.ClusterID,
		"clusterCIDRs", v.cfg.Policy.ClusterCIDRs, "dryRun", v.cfg.DryRun, "leaderElect", o.leaderElect)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	srcOpts, err := sourceOptions(ctx, v, c.kube.Discovery())
	if err != nil {
		return err
	}

	reg, err := newRegistry()
	if err != nil {
		return err
	}
	metrics, err := route.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("registering the route metrics: %w", err)
	}
	health := newCloudHealth()
	ready := newReadiness()

	healthSrv, err := serve(ctx, "health", o.healthAddr, healthMux(ready), e.listening)
	if err != nil {
		return err
	}
	defer healthSrv.shutdown(ctx)
	metricsSrv, err := serve(ctx, "metrics", o.metricsAddr, metricsMux(reg), e.listening)
	if err != nil {
		return err
	}
	defer metricsSrv.shutdown(ctx)

	// Informers run on every replica, so that a follower taking the lease
	// over starts with warm caches.
	factory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithTransform(trimCached))
	nodes := factory.Core().V1().Nodes()
	var controller atomic.Pointer[route.Controller]
	src, err := ipam.New(v.mode, nodes, c.dynamic, srcOpts, func() {
		if ctl := controller.Load(); ctl != nil {
			ctl.Enqueue()
		}
	})
	if err != nil {
		return configError{fmt.Errorf("--cidr-source=%s: %w", v.mode, err)}
	}
	ready.add("informers", func() error {
		if !src.HasSynced() {
			return errors.New("caches not synced yet")
		}
		return nil
	})
	ready.add("cloud", health.check)
	factory.Start(ctx.Done())
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	src.Start(ctx)

	o.cloud.AdoptUnmarked = v.cfg.Policy.AdoptUnmarked
	o.cloud.SourceDestCheck = string(v.cfg.SourceDestCheck)
	access, err := connectCloud(ctx, o.cloud, v.cfg.Policy.ClusterID, reg, health, e)
	if err != nil {
		if ctx.Err() != nil {
			logger.Info("Stopped before connecting to the cloud")
			return nil
		}
		return err
	}
	if access.permissions != nil {
		// Every replica probes, so that a follower taking over is known
		// to be able to act, and /readyz says what to grant.
		ready.add("permissions", access.permissions.Check)
		go access.permissions.Run(ctx, o.cloud.PermissionCheckInterval)
	}
	identity := leaseIdentity()
	var fence route.Fence
	var leaseFenceOf *leaseFence
	if o.leaderElect {
		leaseFenceOf = newLeaseFence(identity, o.leaseDuration, o.renewDeadline)
		fence = leaseFenceOf
	}
	ctl, err := route.New(v.cfg, route.Deps{
		Fence:     fence,
		Kube:      c.kube,
		Nodes:     nodes,
		Source:    src,
		Table:     probedTable{Table: access.table, health: health},
		Instances: probedInstances{Instances: access.instances, health: health},
		ENIs:      access.enis,
		Metrics:   metrics,
		Synced:    []cache.InformerSynced{src.HasSynced},
	})
	if err != nil {
		return configError{err}
	}
	controller.Store(ctl)

	work := ctl.Run
	if o.once {
		// One pass, then stop everything, the election included.
		onceCtx, stop := context.WithCancel(ctx)
		defer stop()
		var passErr error
		work = func(ctx context.Context) error {
			defer stop()
			passErr = ctl.Once(ctx)
			return passErr
		}
		defer func() {
			if err == nil && passErr != nil {
				err = fmt.Errorf("the pass of --once: %w", passErr)
			}
		}()
		ctx = onceCtx
	}
	if o.leaderElect {
		err = runLeading(ctx, election{
			client:        c.election,
			namespace:     o.leaseNamespace,
			name:          o.leaseName,
			identity:      identity,
			fence:         leaseFenceOf,
			leaseDuration: o.leaseDuration,
			renewDeadline: o.renewDeadline,
			retryPeriod:   o.retryPeriod,
		}, work)
	} else {
		err = work(ctx)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("route controller: %w", err)
	}
	logger.Info("Stopped")
	return nil
}

// connectCloud connects to the cloud, retrying with backoff as long as the
// failure may go away by itself (credentials rejected or not yet mounted,
// network, throttling); /readyz says why meanwhile. Any other failure is a
// configuration error.
func connectCloud(ctx context.Context, opts *cloud.Options, clusterID string, reg prometheus.Registerer, health *cloudHealth, e env) (*cloudAccess, error) {
	logger := klog.FromContext(ctx)
	backoff := e.connectBackoff
	for {
		// Every attempt counts its calls in the same series, so a
		// publisher stuck on rejected credentials shows it in its metrics.
		access, err := e.connect(ctx, opts, clusterID, reg)
		if err == nil {
			health.set(nil)
			return access, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !transientCloudError(err) {
			return nil, configError{fmt.Errorf("connecting to Alibaba Cloud: %w", err)}
		}
		if action := cloud.DeniedAction(err); action != "" {
			health.set(fmt.Errorf("grant the RAM action %s to the publisher's credentials (see deploy/ram-policy.json): %w", action, err))
		} else if errors.Is(err, route.ErrUnauthorized) {
			health.set(fmt.Errorf("credentials rejected: %w", err))
		} else {
			health.set(fmt.Errorf("connecting: %w", err))
		}
		delay := backoff.Step()
		logger.Error(err, "Connecting to Alibaba Cloud failed; retrying", "retryAfter", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

func transientCloudError(err error) bool {
	return errors.Is(err, route.ErrUnauthorized) || errors.Is(err, cloud.ErrNetwork) ||
		route.Retryable(err) || errors.As(err, new(*cloud.CredentialError))
}

// sourceOptions checks that the API server serves what the CIDR source
// reads, and returns the source's options.
func sourceOptions(ctx context.Context, v validated, d discovery.DiscoveryInterface) (ipam.Options, error) {
	opts := ipam.Options{ClusterCIDRs: v.cfg.Policy.ClusterCIDRs}
	switch v.mode {
	case ipam.ModeSpiderpool:
		return opts, requireSpiderIPPools(d)
	case ipam.ModeCalico:
		calico, err := ipam.DiscoverCalico(d)
		if err != nil {
			return opts, err
		}
		if !calico.Found() {
			return opts, configError{fmt.Errorf("--cidr-source=calico but the API server serves neither %s nor %s blockaffinities and ippools (is Calico installed with its Kubernetes datastore?)",
				ipam.CalicoV1.GroupVersion(), ipam.CalicoV3.GroupVersion())}
		}
		opts.Calico = calico
	case ipam.ModeAuto:
		// Auto mode works without Calico: a failed discovery only means
		// that Calico's block affinities are not considered.
		calico, err := ipam.DiscoverCalico(d)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Discovering Calico IPAM failed; --cidr-source=auto does not consider it")
		}
		opts.Calico = calico
	case ipam.ModeNodes:
	}
	return opts, nil
}

// requireSpiderIPPools fails unless SpiderIPPools are served: the
// spiderpool source cannot sync without them.
func requireSpiderIPPools(d discovery.DiscoveryInterface) error {
	ok, err := ipam.SpiderIPPoolServed(d)
	if err != nil {
		return err
	}
	if !ok {
		return configError{fmt.Errorf("--cidr-source=spiderpool but the API server does not serve %s (is the %s CRD installed?)",
			ipam.SpiderIPPoolGVR.GroupVersion().WithResource(ipam.SpiderIPPoolGVR.Resource), ipam.SpiderIPPoolCRDName)}
	}
	return nil
}

// trimCached is the informers' transform: it drops from cached objects what
// the publisher never reads (managed fields; most of a Node, see trimNode),
// which would otherwise be most of its memory.
func trimCached(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	if n, ok := obj.(*corev1.Node); ok {
		trimNode(n)
	}
	return obj, nil
}

// trimNode drops what the publisher never reads from the nodes it caches:
// every annotation but the record of its own node condition, and every
// status field but addresses and conditions. A kubelet's node carries ~50
// container images and its capacity, volumes and system info in its status:
// at 5000 nodes that is most of the cache.
func trimNode(n *corev1.Node) {
	record, ok := n.Annotations[route.ConditionAnnotation]
	n.Annotations = nil
	if ok {
		n.Annotations = map[string]string{route.ConditionAnnotation: record}
	}
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: n.Status.Conditions}
}
