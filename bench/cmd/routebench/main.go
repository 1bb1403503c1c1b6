// Command routebench measures how fast routes appear when nodes join, how
// fast one node's route appears in a big cluster and what vpc-route-publisher
// costs at rest, side by side with the upstream k8s.io/cloud-provider route
// controller, on a real etcd + kube-apiserver and the Alibaba Cloud simulator
// with a fixed latency model. See BENCHMARKS.md; run it with `make bench`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/runner"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg := runner.DefaultConfig()
	fs := pflag.NewFlagSet("routebench", pflag.ContinueOnError)
	fs.StringVar(&cfg.BinDir, "bin-dir", "bin", "Directory with etcd, kube-apiserver and vpc-route-publisher (make tools build).")
	fs.StringVar(&cfg.PublisherBin, "publisher-bin", "", "The vpc-route-publisher binary. Default: the one in --bin-dir. Built without -s, perf can name its functions.")
	_, perfErr := exec.LookPath("perf")
	fs.BoolVar(&cfg.Perf, "perf", perfErr == nil, "Record a CPU profile of the publisher's steady windows with perf (default: when perf is installed).")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "Directory for the control plane's data, logs and profiles. Default: a new temporary directory, kept.")
	fs.Var(&sizeList{&cfg.ColdSizes}, "cold-sizes", "Comma-separated fleet sizes of the cold-start case, both controllers (empty: none).")
	fs.IntVar(&cfg.JoinSize, "join-size", cfg.JoinSize, "Fleet size the publisher's join case runs in.")
	fs.IntVar(&cfg.Joins, "joins", cfg.Joins, "Nodes that join one at a time in the publisher's join case (0: skip).")
	fs.IntVar(&cfg.UpstreamJoinSize, "upstream-join-size", cfg.UpstreamJoinSize, "Fleet size the upstream controller's join case runs in.")
	fs.IntVar(&cfg.UpstreamJoins, "upstream-joins", cfg.UpstreamJoins, "Nodes that join one at a time in the upstream join case (0: skip); each takes up to a reconcile period.")
	fs.Var(&sizeList{&cfg.CostSizes}, "cost-sizes", "Comma-separated fleet sizes at which the publisher's CPU and memory are measured (empty: none).")
	fs.DurationVar(&cfg.Model.Base, "write-base", cfg.Model.Base, "Latency model: time a route write keeps its VPC busy, per call.")
	fs.DurationVar(&cfg.Model.PerEntry, "write-per-entry", cfg.Model.PerEntry, "Latency model: additional busy time per entry written.")
	fs.DurationVar(&cfg.ListLatency, "list-latency", cfg.ListLatency, "Latency model: fixed cost of every read call.")
	profile := fs.String("profile", "", "Latency model: take the write model of the simulator profile fast or realistic (then --write-base and --write-per-entry are ignored); the lower bound follows it.")
	fs.DurationVar(&cfg.ResyncPeriod, "resync-period", cfg.ResyncPeriod, "The publisher's --resync-period (short, so that the steady window spans several).")
	fs.IntVar(&cfg.SteadyResyncs, "steady-resyncs", cfg.SteadyResyncs, "Length of the publisher's steady window, in resync periods.")
	fs.DurationVar(&cfg.UpstreamPeriod, "upstream-period", cfg.UpstreamPeriod, "The upstream controller's --route-reconciliation-period.")
	fs.IntVar(&cfg.UpstreamSteadyPeriods, "upstream-steady-periods", cfg.UpstreamSteadyPeriods, "Length of the upstream steady window, in reconcile periods.")
	fs.DurationVar(&cfg.PublisherTimeout, "publisher-timeout", cfg.PublisherTimeout, "Bound of each publisher cold start.")
	fs.DurationVar(&cfg.UpstreamTimeout, "upstream-timeout", cfg.UpstreamTimeout, "Bound of each upstream cold start; beyond it the result is reported as '>' with the rate reached.")
	fs.BoolVar(&cfg.SkipUpstream, "skip-upstream", cfg.SkipUpstream, "Measure the publisher only.")
	fs.BoolVar(&cfg.SkipPublisher, "skip-publisher", cfg.SkipPublisher, "Measure the upstream route controller only.")
	fs.StringArrayVar(&cfg.PublisherArgs, "publisher-arg", nil, "Extra argument for vpc-route-publisher run (repeatable), e.g. --publisher-arg=--sync-coalesce=200ms.")
	fs.IntVar(&cfg.RegisterConcurrency, "register-concurrency", cfg.RegisterConcurrency, "Node writes in flight while the fleet is registered.")
	deadline := fs.Duration("deadline", 45*time.Minute, "Bound of the whole run.")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
		return 2
	}
	if *profile != "" {
		if err := cfg.UseProfile(*profile); err != nil {
			fmt.Fprintf(os.Stderr, "routebench: --profile: %v\n", err)
			return 2
		}
	}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "routebench-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
			return 1
		}
		cfg.WorkDir = dir
	}
	var err error
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
		return 2
	}
	if cfg.PublisherBin != "" {
		if cfg.PublisherBin, err = filepath.Abs(cfg.PublisherBin); err != nil {
			fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
			return 2
		}
	}
	cfg.Log, cfg.Out = os.Stderr, os.Stdout

	// The upstream controller logs every node of every pass through the
	// global klog; keep that in a file so the results stay readable.
	logPath := filepath.Join(cfg.WorkDir, "logs", "routebench.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
		return 1
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
		return 1
	}
	defer func() { _ = logFile.Close() }()
	kfs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(kfs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := kfs.Set(k, v); err != nil {
			fmt.Fprintf(os.Stderr, "routebench: configuring klog: %v\n", err)
			return 1
		}
	}
	klog.SetOutput(logFile)
	defer klog.Flush()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *deadline)
	defer cancel()
	ctx = klog.NewContext(ctx, klog.Background())

	fmt.Fprintf(os.Stderr, "routebench: work directory %s (logs, profiles)\n", cfg.WorkDir)
	results, runErr := runner.Run(ctx, cfg)
	if results != nil {
		if err := results.Report(cfg.Out, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "routebench: %v\n", err)
			return 1
		}
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "routebench: %v\n", runErr)
		return 1
	}
	return 0
}

// sizeList is a comma-separated list of fleet sizes; unlike pflag's int
// slice it accepts an empty value, meaning none.
type sizeList struct{ v *[]int }

func (l *sizeList) String() string {
	parts := make([]string, 0, len(*l.v))
	for _, n := range *l.v {
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

func (l *sizeList) Set(s string) error {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive fleet size", f)
		}
		out = append(out, n)
	}
	*l.v = out
	return nil
}

func (l *sizeList) Type() string { return "sizes" }
