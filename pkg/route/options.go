package route

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Options are the command-line options of the route controller. Register
// them with AddPolicyFlags (audit and run) and AddRunFlags (run only), then
// turn them into a Config.
type Options struct {
	ClusterID         string
	ClusterCIDRs      []string
	AdoptUnmarked     bool
	MaxDeleteRatio    float64
	SafetyValveWindow time.Duration
	ExcludeNodeLabel  string
	SourceDestCheck   string

	DryRun           bool
	ResyncPeriod     time.Duration
	Coalesce         time.Duration
	SetNodeCondition bool
}

// NewOptions returns the options with their defaults.
func NewOptions() *Options {
	return &Options{
		MaxDeleteRatio:    0.5,
		SafetyValveWindow: DefaultSafetyValveWindow,
		ExcludeNodeLabel:  DefaultExcludeNodeLabel,
		SourceDestCheck:   string(SourceDestCheckDisable),
		ResyncPeriod:      DefaultResyncPeriod,
		Coalesce:          DefaultCoalesce,
		SetNodeCondition:  true,
	}
}

// AddPolicyFlags registers the flags deciding what is ours and what may be
// written: shared by run and audit.
func (o *Options) AddPolicyFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ClusterID, "cluster-id", o.ClusterID, "Cluster ID written in the ownership marker of every route entry (required).")
	fs.StringSliceVar(&o.ClusterCIDRs, "cluster-cidr", o.ClusterCIDRs, "Comma-separated IPv4/IPv6 prefixes holding the pod CIDRs (required); only entries inside them are ever considered ours.")
	fs.BoolVar(&o.AdoptUnmarked, "adopt-unmarked", o.AdoptUnmarked, "Adopt unmarked Instance routes inside the cluster CIDRs that exactly match a desired route (migration from the cloud-controller-manager).")
	fs.Float64Var(&o.MaxDeleteRatio, "max-delete-ratio", o.MaxDeleteRatio, "Safety valve: the fraction of the owned entries that may be deleted (for more than one node) in one pass when their nodes are gone, and within --safety-valve-window when their nodes still exist but no longer want them; deletions beyond it are withheld. 1 disables it.")
	fs.DurationVar(&o.SafetyValveWindow, "safety-valve-window", o.SafetyValveWindow, "Sliding window over which deletions of routes of nodes that still exist are bounded by --max-delete-ratio of the owned entries counted at its start.")
	fs.StringVar(&o.SourceDestCheck, "source-dest-check", o.SourceDestCheck, "What to do about the source/destination check of the ENI receiving each node's routed traffic (the instance's primary ENI): disable turns it off, report only reports it, ignore does neither. While it is on (disable, report), the node's route does not count as published.")
	fs.StringVar(&o.ExcludeNodeLabel, "exclude-node-label", o.ExcludeNodeLabel, "Nodes with this label set to \"true\" get no route ("+CCMExcludeNodeLabel+" is always honoured).")
}

// AddRunFlags registers the flags of the controller loop.
func (o *Options) AddRunFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "Compute and report the plans (logs, metrics) without writing any route or patching any node.")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "How often the route tables are re-read to catch changes made in the cloud.")
	fs.DurationVar(&o.Coalesce, "sync-coalesce", o.Coalesce, "How long a pass waits after the first change of a burst, so that the burst becomes one batch of writes.")
	fs.BoolVar(&o.SetNodeCondition, "set-node-condition", o.SetNodeCondition, "Set NetworkUnavailable=False/RouteCreated on a node once its routes are Available in every route table.")
}

// Config validates the options and builds the controller configuration.
// Errors are one sentence naming the flag.
func (o *Options) Config() (Config, error) {
	if strings.TrimSpace(o.ClusterID) == "" {
		return Config{}, errors.New("--cluster-id is required")
	}
	if len(o.ClusterCIDRs) == 0 {
		return Config{}, errors.New("--cluster-cidr is required")
	}
	var cidrs []netip.Prefix
	for _, s := range o.ClusterCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return Config{}, fmt.Errorf("--cluster-cidr: %q is not a CIDR prefix", s)
		}
		if p != p.Masked() {
			return Config{}, fmt.Errorf("--cluster-cidr: %s has host bits set (did you mean %s?)", p, p.Masked())
		}
		if p.Bits() == 0 {
			// Every Instance entry of the family would be inside the
			// ownership guard: a typo away from claiming the VPC's routes.
			return Config{}, fmt.Errorf("--cluster-cidr: %s covers the whole address family; give the cluster's pod CIDRs", p)
		}
		cidrs = append(cidrs, p)
	}
	if o.MaxDeleteRatio < 0 || o.MaxDeleteRatio > 1 {
		return Config{}, fmt.Errorf("--max-delete-ratio must be between 0 and 1, not %v", o.MaxDeleteRatio)
	}
	if o.SafetyValveWindow <= 0 {
		return Config{}, fmt.Errorf("--safety-valve-window must be positive, not %v", o.SafetyValveWindow)
	}
	if o.ResyncPeriod <= 0 {
		return Config{}, fmt.Errorf("--resync-period must be positive, not %v", o.ResyncPeriod)
	}
	if o.Coalesce < 0 {
		return Config{}, fmt.Errorf("--sync-coalesce must not be negative, not %v", o.Coalesce)
	}
	if o.ExcludeNodeLabel == "" {
		return Config{}, errors.New("--exclude-node-label must not be empty")
	}
	mode, err := ParseSourceDestCheckMode(o.SourceDestCheck)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Policy: Policy{
			ClusterID:         o.ClusterID,
			ClusterCIDRs:      cidrs,
			MaxDeleteRatio:    o.MaxDeleteRatio,
			SafetyValveWindow: o.SafetyValveWindow,
			AdoptUnmarked:     o.AdoptUnmarked,
		},
		DryRun:           o.DryRun,
		ResyncPeriod:     o.ResyncPeriod,
		Coalesce:         o.Coalesce,
		SetNodeCondition: o.SetNodeCondition,
		ExcludeNodeLabel: o.ExcludeNodeLabel,
		SourceDestCheck:  mode,
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("--cluster-id: %w", err)
	}
	return cfg, nil
}
