package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/tracker"
	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// bench is the state of one run: the control plane, the fleet registered so
// far and the results.
type bench struct {
	cfg       Config
	cp        *framework.ControlPlane
	admin     kubernetes.Interface
	adminCfg  *rest.Config
	reg       kubelet.Registrar
	conds     *tracker.Conditions
	credsDir  string
	fleet     kubelet.Fleet
	nodes     int // members [0, nodes) are registered
	results   Results
	startedAt time.Time
}

// Run runs the benchmark and returns what it measured. Results measured
// before a failure are returned with the error.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, fleet: fleet(), startedAt: time.Now()}
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if err := b.cp.Stop(); err != nil {
			b.logf("stopping the control plane: %v", err)
		}
	}()
	err := b.cases(ctx)
	return &b.results, err
}

func (b *bench) logf(format string, args ...any) {
	if b.cfg.Log != nil {
		_, _ = fmt.Fprintf(b.cfg.Log, "[%7.1fs] %s\n", time.Since(b.startedAt).Seconds(), fmt.Sprintf(format, args...))
	}
}

func (b *bench) setup(ctx context.Context) error {
	if b.cfg.PublisherBin == "" {
		b.cfg.PublisherBin = filepath.Join(b.cfg.BinDir, "vpc-route-publisher")
	}
	bins := []string{filepath.Join(b.cfg.BinDir, "etcd"), filepath.Join(b.cfg.BinDir, "kube-apiserver")}
	if !b.cfg.SkipPublisher {
		bins = append(bins, b.cfg.PublisherBin)
	}
	for _, bin := range bins {
		if st, err := os.Stat(bin); err != nil || st.IsDir() {
			return fmt.Errorf("%s is missing (run `make tools build`)", bin)
		}
	}
	b.logf("starting etcd and kube-apiserver")
	cp, err := framework.StartControlPlane(ctx, framework.ControlPlaneOptions{
		EtcdBin:      filepath.Join(b.cfg.BinDir, "etcd"),
		APIServerBin: filepath.Join(b.cfg.BinDir, "kube-apiserver"),
		Dir:          filepath.Join(b.cfg.WorkDir, "controlplane"),
	})
	if err != nil {
		return err
	}
	b.cp = cp
	// The benchmark's own client writes the fleet quickly; the contestants
	// get their usual client settings.
	b.adminCfg = rest.CopyConfig(cp.Admin)
	b.adminCfg.QPS, b.adminCfg.Burst = 500, 1000
	if b.admin, err = kubernetes.NewForConfig(b.adminCfg); err != nil {
		_ = cp.Stop()
		return fmt.Errorf("building the admin clientset: %w", err)
	}
	b.reg = kubelet.Registrar{Client: b.admin, Fleet: b.fleet, Concurrency: b.cfg.RegisterConcurrency}
	if b.conds, err = tracker.StartConditions(ctx, b.admin); err != nil {
		_ = cp.Stop()
		return err
	}
	b.credsDir = filepath.Join(b.cfg.WorkDir, "credentials")
	if err := framework.WriteCredentials(b.credsDir, accessKeyID, accessKeySecret); err != nil {
		_ = cp.Stop()
		return err
	}
	return nil
}

// cases visits the fleet sizes in ascending order, growing the fleet, and
// runs at each size every case configured for it.
func (b *bench) cases(ctx context.Context) error {
	for _, n := range b.cfg.sizes() {
		if err := b.grow(ctx, n); err != nil {
			return err
		}
		cold := slices.Contains(b.cfg.ColdSizes, n)
		cost := slices.Contains(b.cfg.CostSizes, n)
		join := b.cfg.Joins > 0 && n == b.cfg.JoinSize
		if !b.cfg.SkipPublisher && (cold || cost || join) {
			if err := b.publisherSession(ctx, n, sessionCases{cold: cold, cost: cost, join: join, steady: join || cost}); err != nil {
				return fmt.Errorf("publisher with %d nodes: %w", n, err)
			}
		}
		if b.cfg.SkipUpstream {
			continue
		}
		ujoin := b.cfg.UpstreamJoins > 0 && n == b.cfg.UpstreamJoinSize
		if cold || ujoin {
			if err := b.upstreamSession(ctx, n, sessionCases{cold: cold, join: ujoin, steady: ujoin}); err != nil {
				return fmt.Errorf("upstream route controller with %d nodes: %w", n, err)
			}
		}
	}
	return nil
}

// sessionCases says what one contestant session measures.
type sessionCases struct {
	cold, join, steady, cost bool
}

// grow registers members up to n.
func (b *bench) grow(ctx context.Context, n int) error {
	if n <= b.nodes {
		return nil
	}
	start := time.Now()
	b.logf("registering nodes %d..%d (kubelet create, IPAM pod CIDR, status heartbeat)", b.nodes, n-1)
	if err := b.reg.Register(ctx, b.fleet.Members(b.nodes, n)); err != nil {
		return fmt.Errorf("registering nodes: %w", err)
	}
	b.logf("registered %d nodes in %.1fs", n-b.nodes, time.Since(start).Seconds())
	b.nodes = n
	return nil
}

// resetConditions puts NetworkUnavailable=True back on every node of the
// fleet that does not have it, and waits until the informer shows it.
func (b *bench) resetConditions(ctx context.Context, members []kubelet.Member) error {
	var names, routed []string
	for _, m := range members {
		names = append(names, m.Name)
		if !b.conds.Unrouted(m.Name) {
			routed = append(routed, m.Name)
		}
	}
	if len(routed) > 0 {
		b.logf("resetting NetworkUnavailable=True on %d nodes", len(routed))
		if err := b.reg.MarkUnrouted(ctx, routed); err != nil {
			return err
		}
	}
	w := tracker.Watch{Conditions: b.conds, Poll: 50 * time.Millisecond}
	return w.Unrouted(ctx, names, 2*time.Minute)
}

// removeJoined deletes the nodes a join case added, so that the next
// contestant starts from the same fleet.
func (b *bench) removeJoined(ctx context.Context, joined []kubelet.Member) error {
	var errs []error
	for _, m := range joined {
		if err := b.admin.CoreV1().Nodes().Delete(ctx, m.Name, metav1.DeleteOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("deleting joined node %s: %w", m.Name, err))
		}
	}
	return errors.Join(errs...)
}

// startCloud starts a fresh simulator with instances for n nodes plus
// extra joiners.
func (b *bench) startCloud(n, extra int) (*cloudsim.Cloud, error) {
	return cloudsim.Start(cloudsim.Options{
		Fleet:           b.fleet,
		Instances:       n + extra,
		Quota:           n + extra + quotaHeadroom,
		WriteBase:       b.cfg.Model.Base,
		WritePerEntry:   b.cfg.Model.PerEntry,
		EntryPending:    b.cfg.Model.Pending,
		ListLatency:     b.cfg.ListLatency,
		AccessKeyID:     accessKeyID,
		AccessKeySecret: accessKeySecret,
	})
}

// waitFor waits for d, or until ctx ends: the steady windows are measured
// over a fixed duration.
func waitFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func pagesPerListing(entries int) int {
	const pageSize = 100
	return max(1, (entries+pageSize-1)/pageSize)
}

// joinGaps returns the pauses before each of n joins: uniform in [0, spread),
// from a fixed seed so that runs are comparable. Joining right after the
// previous route appeared would keep every join in the same phase of a
// controller's periodic work (for the upstream controller: always a full
// reconcile period away from its next pass), which no real cluster does.
func joinGaps(n int, spread time.Duration) []time.Duration {
	r := rand.New(rand.NewPCG(7, 7)) //nolint:gosec // G404: join timing needs no cryptographic randomness.
	gaps := make([]time.Duration, n)
	for i := range gaps {
		gaps[i] = time.Duration(r.Int64N(int64(spread)))
	}
	return gaps
}
