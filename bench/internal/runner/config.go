// Package runner is the benchmark itself: it starts a real control plane,
// registers kubelet-like nodes, and measures vpc-route-publisher (the built
// binary, as a child process) and the upstream k8s.io/cloud-provider route
// controller (in process, on the project's cloudprovider.Routes adapter)
// against fresh simulators with the same latency model, case by case.
package runner

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/stats"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// Config is one benchmark run.
type Config struct {
	// BinDir holds etcd, kube-apiserver and vpc-route-publisher.
	BinDir string
	// PublisherBin is the publisher binary; empty means BinDir's. A binary
	// with its symbol table (not built with -s) lets perf name functions.
	PublisherBin string
	// Perf records a CPU profile of the publisher's steady windows with
	// perf(1), when it is installed.
	Perf bool
	// WorkDir receives the control plane's data, the logs of every
	// process and the profiles.
	WorkDir string

	// ColdSizes are the fleet sizes of the cold-start case, for both
	// controllers.
	ColdSizes []int
	// JoinSize is the fleet the join case runs in; Joins nodes join it one
	// at a time (publisher). UpstreamJoinSize and UpstreamJoins are the same
	// for the upstream controller, whose joins take a reconcile period each.
	JoinSize, Joins                 int
	UpstreamJoinSize, UpstreamJoins int
	// CostSizes are the fleet sizes at which the publisher's CPU and memory
	// are measured (a cold start, then a steady window).
	CostSizes []int

	// Model is the VPC write latency model; ListLatency the fixed cost of
	// every read call. Profile names the simulator latency profile the
	// model was taken from (UseProfile), "" for the benchmark's own model.
	Model       stats.WriteModel
	ListLatency time.Duration
	Profile     string

	// ResyncPeriod is the publisher's --resync-period for the whole run;
	// SteadyResyncs how many periods the steady window lasts.
	// UpstreamPeriod is the upstream --route-reconciliation-period and
	// UpstreamSteadyPeriods its steady window.
	ResyncPeriod          time.Duration
	SteadyResyncs         int
	UpstreamPeriod        time.Duration
	UpstreamSteadyPeriods int

	// PublisherTimeout and UpstreamTimeout bound each cold start; an
	// unfinished upstream run is reported as "> timeout" with the rate it
	// reached.
	PublisherTimeout time.Duration
	UpstreamTimeout  time.Duration
	// SkipUpstream runs the publisher only; SkipPublisher the upstream
	// controller only.
	SkipUpstream  bool
	SkipPublisher bool

	// PublisherArgs are appended to the publisher's command line.
	PublisherArgs []string
	// RegisterConcurrency bounds the node writes in flight.
	RegisterConcurrency int

	// Log receives progress lines; Out the results.
	Log io.Writer
	Out io.Writer
}

// UseProfile takes the write model of a simulator latency profile
// (alisim.ProfileFast or alisim.ProfileRealistic), so that the simulators
// of the run and the physical lower bound follow the same model.
func (c *Config) UseProfile(name string) error {
	m, err := alisim.Profile(name)
	if err != nil {
		return err
	}
	c.Model.Base, c.Model.PerEntry, c.Model.Pending = m.WriteBase, m.WritePerEntry, m.EntryPending
	c.Profile = name
	return nil
}

// DefaultConfig is the benchmark as documented in BENCHMARKS.md.
func DefaultConfig() Config {
	return Config{
		ColdSizes:             []int{200, 1000},
		JoinSize:              1000,
		Joins:                 20,
		UpstreamJoinSize:      200,
		UpstreamJoins:         5,
		CostSizes:             []int{1000, 5000},
		Model:                 stats.WriteModel{Base: 200 * time.Millisecond, PerEntry: 2 * time.Millisecond, MaxBatch: 50},
		ListLatency:           20 * time.Millisecond,
		ResyncPeriod:          5 * time.Second,
		SteadyResyncs:         6,
		UpstreamPeriod:        10 * time.Second,
		UpstreamSteadyPeriods: 3,
		PublisherTimeout:      10 * time.Minute,
		UpstreamTimeout:       15 * time.Minute,
		RegisterConcurrency:   16,
	}
}

// Constants of the simulated cluster.
const (
	clusterID       = "bench"
	accessKeyID     = "LTAI5tBenchmarkKey00001"
	accessKeySecret = "bench-secret-not-a-real-key"
	// quotaHeadroom is added to the table quota beyond the fleet.
	quotaHeadroom = 100
)

var clusterCIDR = netip.MustParsePrefix("10.0.0.0/8")

func fleet() kubelet.Fleet {
	return kubelet.Fleet{
		Region:         "cn-chengdu",
		Zone:           "cn-chengdu-a",
		NodeCIDR:       netip.MustParsePrefix("192.168.32.0/19"),
		ClusterCIDR:    clusterCIDR,
		PodMaskBits:    24,
		KubeletVersion: "v1.37.2",
	}
}

// sizes returns every fleet size the run visits, ascending: the fleet only
// grows, so each node is registered once.
func (c Config) sizes() []int {
	all := slices.Concat(c.ColdSizes, c.CostSizes)
	if c.Joins > 0 {
		all = append(all, c.JoinSize)
	}
	if !c.SkipUpstream && c.UpstreamJoins > 0 {
		all = append(all, c.UpstreamJoinSize)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return err
	}
	sizes := c.sizes()
	if len(sizes) == 0 {
		return fmt.Errorf("nothing to measure: no cold, join or cost size")
	}
	if sizes[0] < 1 {
		return fmt.Errorf("fleet sizes must be positive, got %v", sizes)
	}
	biggest := sizes[len(sizes)-1] + max(c.Joins, c.UpstreamJoins)
	if err := fleet().Validate(biggest); err != nil {
		return err
	}
	if c.ResyncPeriod <= 0 || c.SteadyResyncs < 1 || c.UpstreamPeriod <= 0 || c.UpstreamSteadyPeriods < 1 {
		return fmt.Errorf("resync periods and steady windows must be positive")
	}
	if c.SkipUpstream && c.SkipPublisher {
		return fmt.Errorf("nothing to measure: both contestants skipped")
	}
	if c.PublisherTimeout <= 0 || c.UpstreamTimeout <= 0 {
		return fmt.Errorf("timeouts must be positive")
	}
	return nil
}
