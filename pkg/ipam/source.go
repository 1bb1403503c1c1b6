package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Mode selects where the desired routes come from (--cidr-source).
type Mode string

// The --cidr-source values.
const (
	// ModeAuto routes the nodes' podCIDRs and, where the SpiderIPPool CRD
	// is installed, checks that every per-node pool lies inside its node's
	// podCIDRs.
	ModeAuto Mode = "auto"
	// ModeNodes routes the nodes' podCIDRs (host-local IPAM with
	// "usePodCidr").
	ModeNodes Mode = "nodes"
	// ModeSpiderpool routes the per-node SpiderIPPools.
	ModeSpiderpool Mode = "spiderpool"
	// ModeCalico routes Calico IPAM's confirmed block affinities.
	ModeCalico Mode = "calico"
)

// Modes lists the valid --cidr-source values.
var Modes = []Mode{ModeAuto, ModeNodes, ModeSpiderpool, ModeCalico}

// ParseMode parses a --cidr-source value.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown CIDR source %q: must be one of auto, nodes, spiderpool, calico", s)
}

// ErrNotSynced is returned by Routes while the caches it reads have not
// synced: an empty cache must never be mistaken for a cluster without routes.
var ErrNotSynced = errors.New("informer caches have not synced")

// Options configures a Source.
type Options struct {
	// ClusterCIDRs are the --cluster-cidr prefixes. Destinations outside
	// them are reported, never routed; SpiderIPPools whose subnet is
	// disjoint from them belong to other networks and are ignored.
	ClusterCIDRs []netip.Prefix
	// Calico is what the API server serves of Calico IPAM (DiscoverCalico).
	// The calico mode needs it; auto mode watches Calico when it is found.
	Calico CalicoDiscovery
}

// Source is the desired state of the cluster read from informer caches. It
// implements route.Source for every --cidr-source mode.
type Source struct {
	mode        Mode
	opts        Options
	nodes       corelisters.NodeLister
	nodesSynced cache.InformerSynced
	// pools watches SpiderIPPools: always in spiderpool mode, while the CRD
	// exists in auto mode, never in nodes mode.
	pools *poolWatch
	// crds watches the SpiderIPPool CRD itself (auto mode only).
	crds cache.SharedIndexInformer
	// crdsForbidden is set when CRDs may not be read (auto mode only).
	crdsForbidden atomic.Bool
	// crdErr is the last error listing or watching the CRD (auto mode).
	crdErr lastError
	// calico watches Calico IPAM: always in calico mode, in auto mode when
	// Calico is served.
	calico *calicoWatch

	notesMu sync.Mutex
	notes   []route.Note
}

// lastError holds the last error an informer reported, for problems.
type lastError struct {
	mu  sync.Mutex
	err error
}

func (l *lastError) set(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

func (l *lastError) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

var (
	_ route.Source     = (*Source)(nil)
	_ route.NoteSource = (*Source)(nil)
)

// New returns the Source of a mode. client may be nil in nodes mode.
// onChange (may be nil) is called from informer goroutines whenever an
// object that can change the desired routes or problems changes; it must
// not block (enqueue a work item).
func New(mode Mode, nodes coreinformers.NodeInformer, client dynamic.Interface, opts Options, onChange func()) (*Source, error) {
	switch mode {
	case ModeNodes:
		return NewNodeSource(nodes, opts, onChange)
	case ModeSpiderpool:
		return NewSpiderpoolSource(nodes, client, opts, onChange)
	case ModeAuto:
		return NewAutoSource(nodes, client, opts, onChange)
	case ModeCalico:
		return NewCalicoSource(nodes, client, opts, onChange)
	default:
		return nil, fmt.Errorf("unknown CIDR source %q", mode)
	}
}

// NewNodeSource returns the source of host-local IPAM: one route per pod
// CIDR of every node (both families on dual-stack nodes).
func NewNodeSource(nodes coreinformers.NodeInformer, opts Options, onChange func()) (*Source, error) {
	return newSource(ModeNodes, nodes, nil, opts, onChange)
}

// NewSpiderpoolSource returns the source of Spiderpool IPAM: routes for the
// SpiderIPPools pinned to one node, read through a dynamic informer.
func NewSpiderpoolSource(nodes coreinformers.NodeInformer, client dynamic.Interface, opts Options, onChange func()) (*Source, error) {
	if client == nil {
		return nil, errors.New("the spiderpool CIDR source needs a dynamic client")
	}
	return newSource(ModeSpiderpool, nodes, client, opts, onChange)
}

// NewAutoSource returns the source of auto mode: the nodes' pod CIDRs are
// routed, and SpiderIPPools, when their CRD is installed (watched, so it may
// come and go), are checked against their node's pod CIDRs.
func NewAutoSource(nodes coreinformers.NodeInformer, client dynamic.Interface, opts Options, onChange func()) (*Source, error) {
	if client == nil {
		return nil, errors.New("the auto CIDR source needs a dynamic client")
	}
	return newSource(ModeAuto, nodes, client, opts, onChange)
}

// NewCalicoSource returns the source of Calico IPAM: the confirmed block
// affinities of the pools that are not tunnelled, read through dynamic
// informers in the API group opts.Calico names.
func NewCalicoSource(nodes coreinformers.NodeInformer, client dynamic.Interface, opts Options, onChange func()) (*Source, error) {
	if client == nil {
		return nil, errors.New("the calico CIDR source needs a dynamic client")
	}
	return newSource(ModeCalico, nodes, client, opts, onChange)
}

func newSource(mode Mode, nodes coreinformers.NodeInformer, client dynamic.Interface, opts Options, onChange func()) (*Source, error) {
	if nodes == nil {
		return nil, errors.New("a node informer is required")
	}
	if len(opts.ClusterCIDRs) == 0 {
		return nil, errors.New("at least one cluster CIDR is required")
	}
	notify := func() {
		if onChange != nil {
			onChange()
		}
	}
	informer := nodes.Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { notify() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || o.Spec.PodCIDR != n.Spec.PodCIDR || !reflect.DeepEqual(o.Spec.PodCIDRs, n.Spec.PodCIDRs) {
				notify()
			}
		},
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return nil, fmt.Errorf("watching nodes: %w", err)
	}
	s := &Source{
		mode:        mode,
		opts:        opts,
		nodes:       nodes.Lister(),
		nodesSynced: informer.HasSynced,
	}
	if mode == ModeNodes {
		return s, nil
	}
	if mode == ModeCalico || (mode == ModeAuto && opts.Calico.Found()) {
		w, err := newCalicoWatch(client, opts.Calico, notify)
		if err != nil {
			return nil, err
		}
		s.calico = w
	}
	if mode == ModeCalico {
		return s, nil
	}
	s.pools = &poolWatch{client: client, onChange: notify}
	if mode == ModeAuto {
		crds, err := newCRDInformer(client, s.pools, notify, &s.crdsForbidden, &s.crdErr)
		if err != nil {
			return nil, err
		}
		s.crds = crds
	}
	return s, nil
}

// Mode returns the mode of the source.
func (s *Source) Mode() Mode { return s.mode }

// Start starts the informers the source owns (SpiderIPPools and, in auto
// mode, the CRD); the node informer belongs to the caller's factory and is
// started there. They stop when ctx is done.
func (s *Source) Start(ctx context.Context) {
	switch s.mode {
	case ModeSpiderpool:
		s.pools.start(ctx)
	case ModeAuto:
		s.pools.setBase(ctx)
		go s.crds.RunWithContext(ctx)
	case ModeNodes, ModeCalico:
	}
	if s.calico != nil {
		s.calico.start(ctx)
	}
}

// HasSynced reports whether every cache the source reads has synced.
func (s *Source) HasSynced() bool {
	if !s.nodesSynced() {
		return false
	}
	switch s.mode {
	case ModeSpiderpool:
		return s.pools.synced()
	case ModeAuto:
		// The pool check is advisory: routes come from the nodes alone,
		// so neither the CRD nor the pools may hold them up. Calico's
		// blocks may be the routes, so their caches must have synced
		// (unless they may not be read at all).
		return s.calico == nil || s.calico.synced() || s.calico.unavailable()
	case ModeCalico:
		return s.calico.synced()
	default:
		return true
	}
}

// WaitForCacheSync blocks until the source's caches have synced or ctx is
// done, and reports whether they synced.
func (s *Source) WaitForCacheSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

// Routes returns the desired routes (Node and Destination set) and the
// problems of the objects that cannot be routed correctly. It reads only
// the informer caches.
func (s *Source) Routes(ctx context.Context) ([]route.Route, []route.Problem, error) {
	logger := klog.FromContext(ctx)
	if !s.nodesSynced() {
		return nil, nil, fmt.Errorf("node cache: %w", ErrNotSynced)
	}
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	var claims []claim
	var problems []route.Problem
	var notes []route.Note
	switch s.mode {
	case ModeNodes:
		claims, problems = nodeClaims(nodes, s.opts.ClusterCIDRs)
	case ModeSpiderpool:
		if !s.pools.synced() {
			return nil, nil, fmt.Errorf("SpiderIPPool cache: %w", ErrNotSynced)
		}
		set := decodePools(s.pools.list(), s.opts.ClusterCIDRs)
		s.logIgnored(logger, set)
		exists := make(map[string]bool, len(nodes))
		for _, n := range nodes {
			exists[n.Name] = true
		}
		claims, problems = poolClaims(set, func(n string) bool { return exists[n] }, s.opts.ClusterCIDRs)
	case ModeAuto:
		if s.calico != nil && !s.calico.synced() && !s.calico.unavailable() {
			// Calico's blocks may be the routes: an empty cache must not
			// read as a cluster without them.
			return nil, nil, fmt.Errorf("cache of Calico IPAM: %w", ErrNotSynced)
		}
		claims, problems = nodeClaims(nodes, s.opts.ClusterCIDRs)
		if s.pools.synced() {
			podCIDRs := make(map[string][]netip.Prefix, len(nodes))
			for _, n := range nodes {
				podCIDRs[n.Name], _ = nodePodCIDRs(n)
			}
			set := decodePools(s.pools.list(), s.opts.ClusterCIDRs)
			s.logIgnored(logger, set)
			problems = append(problems, validatePools(set, podCIDRs, s.opts.ClusterCIDRs)...)
		} else if s.pools.running() {
			logger.V(2).Info("SpiderIPPool cache not synced yet; pools are not checked in this pass")
		}
		if p, failed := s.poolCheckFailure(); failed {
			problems = append(problems, p)
		}
		c, ps, ns := s.autoCalico(logger, nodes)
		claims, problems, notes = append(claims, c...), append(problems, ps...), ns
	case ModeCalico:
		if !s.calico.synced() {
			return nil, nil, fmt.Errorf("cache of Calico IPAM: %w", ErrNotSynced)
		}
		res := calicoClaims(s.calico.snapshot(), s.opts.ClusterCIDRs)
		claims, problems, notes = res.claims, res.problems, res.notes
	}
	s.setNotes(notes)
	routes, overlaps := resolve(claims)
	problems = append(problems, overlaps...)
	sortProblems(problems)
	logger.V(4).Info("Computed desired routes", "source", s.mode, "routes", len(routes), "problems", len(problems))
	return routes, problems, nil
}

// poolCheckFailure reports, in auto mode, why the pools cannot be checked
// when listing them or their CRD fails (and the pool cache has not synced
// since): the failure is a problem of the check, never of the routes.
func (s *Source) poolCheckFailure() (route.Problem, bool) {
	err := s.pools.listError()
	if err == nil && !s.crds.HasSynced() {
		err = s.crdErr.get()
	}
	if err == nil {
		return route.Problem{}, false
	}
	return route.Problem{
		Object:  "CustomResourceDefinition/" + SpiderIPPoolCRDName,
		Reason:  ReasonPoolCheckFailed,
		Message: fmt.Sprintf("SpiderIPPools (CRD %s) cannot be listed, so they are not checked against the nodes' podCIDRs; routes are published from the nodes regardless: %v.", SpiderIPPoolCRDName, strings.TrimSuffix(err.Error(), ".")),
	}, true
}

// autoCalico applies auto mode's rule for Calico IPAM: Calico's block
// affinities are routed when they exist and no node has a podCIDR; when
// both exist the podCIDRs are routed (as before Calico was read) and the
// mix is reported, never silently resolved.
func (s *Source) autoCalico(logger klog.Logger, nodes []*corev1.Node) ([]claim, []route.Problem, []route.Note) {
	if s.calico == nil {
		return nil, nil, nil
	}
	if s.calico.unavailable() {
		logger.V(2).Info("Calico IPAM is not readable; auto mode routes node podCIDRs only")
		return nil, nil, nil
	}
	res := calicoClaims(s.calico.snapshot(), s.opts.ClusterCIDRs)
	if res.blocks == 0 {
		return nil, nil, nil
	}
	var withCIDRs []string
	for _, n := range nodes {
		if len(n.Spec.PodCIDRs) > 0 || n.Spec.PodCIDR != "" {
			withCIDRs = append(withCIDRs, n.Name)
		}
	}
	if len(withCIDRs) == 0 {
		notes := append([]route.Note{{
			Message: fmt.Sprintf("--cidr-source=auto routes Calico's block affinities (%s): no node has a podCIDR.", s.calico.api.GroupVersion()),
		}}, res.notes...)
		return res.claims, res.problems, notes
	}
	slices.Sort(withCIDRs)
	return nil, []route.Problem{{
		Object: "BlockAffinity/",
		Reason: ReasonMixedCIDRSources,
		Message: fmt.Sprintf("Calico IPAM has %d confirmed blocks, and %d nodes have podCIDRs (e.g. %s): --cidr-source=auto routes the podCIDRs only. Set --cidr-source=calico if pods get their addresses from calico-ipam, or --cidr-source=nodes if they use host-local.",
			res.blocks, len(withCIDRs), withCIDRs[0]),
	}}, nil
}

// Notes returns the notes of the latest Routes call.
func (s *Source) Notes() []route.Note {
	s.notesMu.Lock()
	defer s.notesMu.Unlock()
	return slices.Clone(s.notes)
}

func (s *Source) setNotes(notes []route.Note) {
	s.notesMu.Lock()
	defer s.notesMu.Unlock()
	s.notes = notes
}

// logIgnored names, at V(2), the pools of other networks, which helps to
// spot a --cluster-cidr that misses the pod network.
func (s *Source) logIgnored(logger klog.Logger, set poolSet) {
	if !logger.V(2).Enabled() {
		return
	}
	var ignored []string
	for _, p := range set.pools {
		if !overlapsClusterCIDR(p.subnet, s.opts.ClusterCIDRs) {
			ignored = append(ignored, p.name+" ("+p.subnet.String()+")")
		}
	}
	if len(ignored) > 0 {
		logger.V(2).Info("Ignoring SpiderIPPools whose subnet is outside the cluster CIDRs", "pools", ignored)
	}
}

// decodePools decodes the cached pools. Pools that cannot be read are
// reported unless their subnet is readable and outside the cluster CIDRs.
func decodePools(objs []*unstructured.Unstructured, clusterCIDRs []netip.Prefix) poolSet {
	var set poolSet
	for _, u := range objs {
		p, err := decodePool(u)
		if err != nil {
			if p.subnet.IsValid() && !overlapsClusterCIDR(p.subnet, clusterCIDRs) {
				continue
			}
			set.problems = append(set.problems, route.Problem{
				Object:  p.object(),
				Node:    onlyNode(p.nodes),
				Reason:  ReasonInvalidPool,
				Message: fmt.Sprintf("SpiderIPPool %s cannot be read: %v.", p.name, err),
			})
			continue
		}
		set.pools = append(set.pools, p)
	}
	return set
}

func onlyNode(nodes []string) string {
	if len(nodes) == 1 {
		return nodes[0]
	}
	return ""
}

// poolWatch runs a dynamic informer on SpiderIPPools that can be started
// and stopped, as the CRD appears and disappears in auto mode.
type poolWatch struct {
	client   dynamic.Interface
	onChange func()

	mu       sync.Mutex
	base     context.Context
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	// err is the last list or watch error of the running informer.
	err lastError
}

// listError returns the last error of the pool informer while it has not
// synced; nil once it has.
func (w *poolWatch) listError() error {
	if !w.running() || w.synced() {
		return nil
	}
	return w.err.get()
}

func (w *poolWatch) setBase(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.base = ctx
}

// startBase starts the informer under the context given to setBase; it
// does nothing before setBase (the source has not been started).
func (w *poolWatch) startBase() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked(w.base)
}

// start runs the informer under ctx; it does nothing when the informer
// already runs.
func (w *poolWatch) start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked(ctx)
}

func (w *poolWatch) startLocked(ctx context.Context) {
	if w.informer != nil || ctx == nil || ctx.Err() != nil {
		return
	}
	informer := newPoolInformer(w.client)
	w.err.set(nil)
	// SetWatchErrorHandlerWithContext only fails once the informer has started.
	_ = informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		w.err.set(err)
		w.onChange()
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	if _, err := informer.AddEventHandler(poolEventHandler(w.onChange)); err != nil {
		// Only fails on a stopped informer, and this one is new.
		klog.FromContext(ctx).Error(err, "Watching SpiderIPPools")
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	w.informer, w.cancel = informer, cancel
	klog.FromContext(ctx).Info("Watching SpiderIPPools", "resource", SpiderIPPoolGVR.String())
	go informer.RunWithContext(ctx)
}

func (w *poolWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		w.cancel()
	}
	w.informer, w.cancel = nil, nil
}

func (w *poolWatch) running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.informer != nil
}

func (w *poolWatch) synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.informer != nil && w.informer.HasSynced()
}

func (w *poolWatch) list() []*unstructured.Unstructured {
	w.mu.Lock()
	informer := w.informer
	w.mu.Unlock()
	if informer == nil {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, obj := range informer.GetStore().List() {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	return out
}

// SpiderIPPoolServed asks the API server's discovery whether SpiderIPPools
// are served (the CRD is installed and established). The spiderpool mode
// cannot start without them; auto mode watches the CRD instead.
func SpiderIPPoolServed(d discovery.DiscoveryInterface) (bool, error) {
	list, err := d.ServerResourcesForGroupVersion(SpiderIPPoolGVR.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovering %s: %w", SpiderIPPoolGVR.GroupVersion(), err)
	}
	for _, r := range list.APIResources {
		if r.Name == SpiderIPPoolGVR.Resource {
			return true, nil
		}
	}
	return false, nil
}
