package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of Config.
const (
	DefaultResyncPeriod      = 5 * time.Minute
	DefaultCoalesce          = 500 * time.Millisecond
	DefaultExcludeNodeLabel  = "route.vpc-route-publisher.io/exclude"
	DefaultMinRetryDelay     = time.Second
	DefaultMaxRetryDelay     = 5 * time.Minute
	DefaultMaxRetryableDelay = 30 * time.Second
	DefaultSafetyValveWindow = 10 * time.Minute
)

// CCMExcludeNodeLabel is the cloud-controller-manager's label excluding a
// node from routes and load balancers; always honoured.
const CCMExcludeNodeLabel = "service.alibabacloud.com/exclude-node"

// ControllerName is the component name of events and the workqueue name.
const ControllerName = "vpc-route-publisher"

// workKey is the single work item: every pass reconciles the whole cluster,
// so one key is enough and a burst of events collapses into one pass.
const workKey = "cluster"

// Config is the controller's behaviour. The zero value of a duration means
// its default.
type Config struct {
	// Policy decides ownership, adoption and the deletion safety valve.
	Policy Policy
	// DryRun computes and reports plans but never writes a route nor
	// patches a node.
	DryRun bool
	// ResyncPeriod is how often the route tables are re-read to catch
	// drift made in the cloud (default 5m).
	ResyncPeriod time.Duration
	// Coalesce is how long a pass waits after the first event of a burst
	// so that the burst is handled by one pass (default 500ms).
	Coalesce time.Duration
	// SetNodeCondition patches NetworkUnavailable=False/RouteCreated on a
	// node once its routes are Available in every table.
	SetNodeCondition bool
	// ExcludeNodeLabel names a label that, set to "true" on a node, keeps
	// it from getting a route (default DefaultExcludeNodeLabel).
	// CCMExcludeNodeLabel is always honoured as well.
	ExcludeNodeLabel string
	// MinRetryDelay and MaxRetryDelay bound the exponential backoff of a
	// failing pass (defaults 1s and 5m).
	MinRetryDelay time.Duration
	MaxRetryDelay time.Duration
	// SourceDestCheck is what to do about the source/destination check of
	// the ENI receiving each node's routed traffic; empty means ignore.
	// disable and report need Deps.ENIs.
	SourceDestCheck SourceDestCheckMode
	// MaxRetryableDelay caps the backoff when every failure of a pass is
	// transient (throttled, busy, not yet Available), so that those are
	// retried sooner (default 30s, at most MaxRetryDelay).
	MaxRetryableDelay time.Duration
}

func (c Config) withDefaults() Config {
	if c.ResyncPeriod <= 0 {
		c.ResyncPeriod = DefaultResyncPeriod
	}
	if c.Policy.SafetyValveWindow <= 0 {
		c.Policy.SafetyValveWindow = DefaultSafetyValveWindow
	}
	if c.Coalesce <= 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.ExcludeNodeLabel == "" {
		c.ExcludeNodeLabel = DefaultExcludeNodeLabel
	}
	if c.MinRetryDelay <= 0 {
		c.MinRetryDelay = DefaultMinRetryDelay
	}
	if c.MaxRetryDelay <= 0 {
		c.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if c.MaxRetryDelay < c.MinRetryDelay {
		c.MaxRetryDelay = c.MinRetryDelay
	}
	if c.MaxRetryableDelay <= 0 {
		c.MaxRetryableDelay = DefaultMaxRetryableDelay
	}
	c.MaxRetryableDelay = min(max(c.MaxRetryableDelay, c.MinRetryDelay), c.MaxRetryDelay)
	return c
}

// Validate reports the first configuration error, as one sentence.
func (c Config) Validate() error {
	p := c.Policy
	if err := (Marker{Cluster: p.ClusterID, Node: "n"}).Validate(); err != nil {
		return fmt.Errorf("invalid cluster ID %q: %w", p.ClusterID, err)
	}
	if len(p.ClusterCIDRs) == 0 {
		return errors.New("at least one cluster CIDR is required")
	}
	for _, cidr := range p.ClusterCIDRs {
		if !cidr.IsValid() || cidr != cidr.Masked() {
			return fmt.Errorf("cluster CIDR %s is not a valid masked prefix", cidr)
		}
	}
	if p.MaxDeleteRatio < 0 || p.MaxDeleteRatio > 1 {
		return fmt.Errorf("max delete ratio %v must be between 0 and 1", p.MaxDeleteRatio)
	}
	return nil
}

// Deps are the controller's collaborators.
type Deps struct {
	// Kube is used to patch node conditions and, unless Recorder is set,
	// to record events.
	Kube kubernetes.Interface
	// Nodes is the node informer of a shared informer factory the caller
	// starts.
	Nodes coreinformers.NodeInformer
	// Source produces the desired routes.
	Source Source
	// Table reads and writes the cloud route tables.
	Table Table
	// Instances maps nodes to ECS instances.
	Instances Instances
	// ENIs reads and turns off the ENI source/destination check; required
	// unless Config.SourceDestCheck is ignore (or empty).
	ENIs ENIs
	// Metrics are updated by every pass; nil keeps them in a private
	// registry (audit).
	Metrics *Metrics
	// Recorder records events; nil means one is built on Kube when Run
	// starts and shut down when it returns.
	Recorder record.EventRecorder
	// Synced are extra caches (the source's informers) to wait for before
	// the first pass.
	Synced []cache.InformerSynced
	// Clock defaults to the real clock.
	Clock clock.WithTicker
	// Fence, when set, says whether this replica may still write (see
	// Fence); every cloud write and node patch asks it first. Nil without
	// leader election.
	Fence Fence
}

// Controller publishes the desired routes of the cluster into the VPC
// route tables. One pass (sync) reconciles the whole cluster; the same
// observation and plan serve Audit.
type Controller struct {
	cfg       Config
	kube      kubernetes.Interface
	nodes     corelisters.NodeLister
	informer  cache.SharedIndexInformer
	source    Source
	table     Table
	instances Instances
	enis      ENIs
	metrics   *Metrics
	recorder  record.EventRecorder
	synced    []cache.InformerSynced
	clock     clock.WithTicker
	fence     Fence

	queue    atomic.Pointer[workqueue.TypedRateLimitingInterface[string]]
	lastSync atomic.Pointer[time.Time]
	// window is the safety valve's memory of earlier passes (see
	// ValveWindow), replaced whole by every pass.
	window  atomic.Pointer[ValveWindow]
	retry   workqueue.TypedRateLimiter[string]
	running atomic.Bool
	// lastReport is the report of the last pass that ran, for Once.
	lastReport atomic.Pointer[Report]

	// resolver caches node → instance mappings; safe for concurrent use.
	resolver *resolver
	// state is the per-process memory of the pass loop (convergence
	// timestamps, warnings already emitted); only the worker touches it.
	state *passState
	// noticed records when the informer first delivered a node whose
	// routes may have changed, so convergence latency starts at the event,
	// not at the pass that picked it up after the coalescing window.
	noticed noticedNodes
	// checkMemory keeps the ENI checks last read.
	checkMemory checkMemory
}

// New builds a controller. It starts nothing: call Run (leader) or Audit.
func New(cfg Config, d Deps) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Kube == nil:
		return nil, errors.New("route controller: a Kubernetes client is required")
	case d.Nodes == nil:
		return nil, errors.New("route controller: a node informer is required")
	case d.Source == nil:
		return nil, errors.New("route controller: a route source is required")
	case d.Table == nil:
		return nil, errors.New("route controller: a route table is required")
	case d.Instances == nil:
		return nil, errors.New("route controller: an instance resolver is required")
	case d.ENIs == nil && cfg.SourceDestCheck != "" && cfg.SourceDestCheck != SourceDestCheckIgnore:
		return nil, errNoENIs
	}
	if d.Metrics == nil {
		// Audit needs no exported metrics: keep them private.
		m, err := NewMetrics(prometheus.NewRegistry())
		if err != nil {
			return nil, fmt.Errorf("creating metrics: %w", err)
		}
		d.Metrics = m
	}
	clk := d.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Controller{
		cfg:       cfg,
		kube:      d.Kube,
		nodes:     d.Nodes.Lister(),
		informer:  d.Nodes.Informer(),
		source:    d.Source,
		table:     d.Table,
		instances: d.Instances,
		enis:      d.ENIs,
		metrics:   d.Metrics,
		recorder:  d.Recorder,
		synced:    d.Synced,
		clock:     clk,
		fence:     d.Fence,
		retry:     workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.MinRetryDelay, cfg.MaxRetryableDelay),
		resolver:  newResolver(d.Instances),
		state:     newPassState(),
	}, nil
}

// Enqueue asks for a pass, after the coalescing delay. Sources call it when
// their objects change. It is a no-op while the controller is not running
// (Run starts with a full pass anyway).
func (c *Controller) Enqueue() {
	if q := c.queue.Load(); q != nil {
		(*q).AddAfter(workKey, c.cfg.Coalesce)
	}
}

// LastSuccessfulSync returns when the last pass that succeeded ended; zero
// before the first one. Health checks can compare it with the resync
// period.
func (c *Controller) LastSuccessfulSync() time.Time {
	if t := c.lastSync.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Run reconciles until ctx is cancelled (e.g. the leader lease is lost). It
// waits for the caches, runs a first pass at once, then a pass after every
// relevant change (coalesced) and every ResyncPeriod. It returns once the
// worker has stopped; it leaves no goroutine behind.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("route controller is already running")
	}
	defer c.running.Store(false)
	defer utilruntime.HandleCrashWithContext(ctx)
	logger := klog.FromContext(ctx).WithName("route-controller")
	ctx = WithFence(klog.NewContext(ctx, logger), c.fence)

	defer c.startRecorder(ctx)()

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](c.cfg.MinRetryDelay, c.cfg.MaxRetryDelay),
			&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
		),
		workqueue.TypedRateLimitingQueueConfig[string]{
			Name:            ControllerName,
			MetricsProvider: c.metrics.workqueue,
			Clock:           c.clock,
		},
	)
	c.queue.Store(&queue)
	defer c.queue.Store(nil)
	defer queue.ShutDown()

	reg, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if n, ok := obj.(*corev1.Node); ok {
				c.noticed.note(n.Name, c.clock.Now())
			}
			c.Enqueue()
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || c.nodeChanged(o, n) {
				if ok2 {
					c.noticed.note(n.Name, c.clock.Now())
				}
				c.Enqueue()
			}
		},
		DeleteFunc: func(any) { c.Enqueue() },
	})
	if err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	defer func() {
		if err := c.informer.RemoveEventHandler(reg); err != nil {
			logger.Error(err, "Removing the node event handler")
		}
	}()

	c.metrics.DryRun.Set(boolFloat(c.cfg.DryRun))
	// Run is only called while leading (or without leader election).
	c.metrics.SetLeader(true)
	defer c.metrics.SetLeader(false)
	defer c.metrics.forgetLeaderState()
	logger.Info("Waiting for caches", "dryRun", c.cfg.DryRun)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, append([]cache.InformerSynced{c.informer.HasSynced}, c.synced...)...) {
		return fmt.Errorf("waiting for caches: %w", context.Cause(ctx))
	}

	queue.Add(workKey)
	var wg sync.WaitGroup
	wg.Go(func() {
		for c.processNextItem(ctx, queue) {
		}
	})
	wg.Go(func() {
		t := c.clock.NewTicker(c.cfg.ResyncPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				queue.Add(workKey)
			}
		}
	})
	logger.Info("Started", "resyncPeriod", c.cfg.ResyncPeriod, "coalesce", c.cfg.Coalesce)
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	logger.Info("Stopped")
	return nil
}

// startRecorder starts recording events, unless a recorder was injected;
// the returned function stops it.
func (c *Controller) startRecorder(ctx context.Context) (stop func()) {
	if c.recorder != nil {
		return func() {}
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.kube.CoreV1().Events("")})
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: ControllerName})
	return func() {
		broadcaster.Shutdown()
		c.recorder = nil
	}
}

// Once runs a single pass, the one Run starts with, and returns its error:
// nil when every entry was placed. It is run --once, for migrations and CI
// (as external-dns's --once). The caller must have started the informers.
func (c *Controller) Once(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("route controller is already running")
	}
	defer c.running.Store(false)
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithName("route-controller"))
	defer c.startRecorder(ctx)()
	c.metrics.DryRun.Set(boolFloat(c.cfg.DryRun))
	if !cache.WaitForNamedCacheSyncWithContext(ctx, append([]cache.InformerSynced{c.informer.HasSynced}, c.synced...)...) {
		return fmt.Errorf("waiting for caches: %w", context.Cause(ctx))
	}
	if err := c.sync(ctx); err != nil {
		return err
	}
	// A pass can succeed and leave routes unplaced (a node whose instance
	// is unknown, a conflict): --once is for CI, so that is a failure too.
	if rep := c.lastReport.Load(); rep != nil && !rep.InSync() {
		return fmt.Errorf("not in sync after the pass: %s", rep.Summary())
	}
	return nil
}

// processNextItem runs one pass and decides when the next one happens. A
// failing pass is never dropped: it is retried with backoff, sooner when
// every failure is transient.
func (c *Controller) processNextItem(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, shutdown := queue.Get()
	if shutdown {
		return false
	}
	defer queue.Done(key)
	err := c.sync(ctx)
	logger := klog.FromContext(ctx)
	switch {
	case err == nil:
		queue.Forget(key)
		c.retry.Forget(key)
	case ctx.Err() != nil:
		// Leadership lost or shutting down: the next leader starts over.
		logger.V(2).Info("Pass interrupted", "err", err)
	case Retryable(err):
		delay := c.retry.When(key)
		logger.Info("Pass hit transient cloud errors, retrying", "after", delay, "err", err)
		queue.AddAfter(key, delay)
	default:
		c.retry.Forget(key)
		logger.Error(err, "Pass failed, retrying with backoff", "retries", queue.NumRequeues(key))
		queue.AddRateLimited(key)
	}
	return true
}

// Retryable reports whether every failure in err is one the cloud calls
// transient: throttling, a busy VPC, an entry not yet Available. err may be
// a tree of wrapped and joined errors (a pass's per-entry failures).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	for _, class := range []error{ErrThrottled, ErrBusy, ErrNotAvailable} {
		if err == class { //nolint:errorlint // comparing tree nodes one by one; the walk below unwraps
			return true
		}
		if is, ok := err.(interface{ Is(error) bool }); ok && is.Is(class) {
			return true
		}
	}
	switch u := err.(type) { //nolint:errorlint // walking the tree explicitly so that one hard failure in a join counts
	case interface{ Unwrap() []error }:
		errs := u.Unwrap()
		return len(errs) > 0 && !slices.ContainsFunc(errs, func(e error) bool { return !Retryable(e) })
	case interface{ Unwrap() error }:
		return Retryable(u.Unwrap())
	}
	return false
}

// nodeChanged reports whether an update can change the node's routes: its
// pod CIDRs, provider ID, internal addresses or exclusion labels. Status
// heartbeats and our own condition patches are ignored.
func (c *Controller) nodeChanged(o, n *corev1.Node) bool {
	return !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) ||
		o.Spec.PodCIDR != n.Spec.PodCIDR ||
		o.Spec.ProviderID != n.Spec.ProviderID ||
		!slices.Equal(internalIPs(o), internalIPs(n)) ||
		c.excluded(o) != c.excluded(n)
}
