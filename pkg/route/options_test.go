package route

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestOptions(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		o := NewOptions()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddPolicyFlags(fs)
		o.AddRunFlags(fs)
		if err := fs.Parse(args); err != nil {
			return Config{}, err
		}
		return o.Config()
	}

	cfg, err := parse("--cluster-id=prod", "--cluster-cidr=10.0.0.0/16,fd00:10::/56", "--adopt-unmarked",
		"--max-delete-ratio=0.25", "--dry-run", "--resync-period=1m", "--sync-coalesce=1s", "--set-node-condition=false",
		"--exclude-node-label=example.com/no-route", "--source-dest-check=report", "--safety-valve-window=20m")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Policy: Policy{
			ClusterID:         "prod",
			ClusterCIDRs:      []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/56")},
			MaxDeleteRatio:    0.25,
			SafetyValveWindow: 20 * time.Minute,
			AdoptUnmarked:     true,
		},
		DryRun: true, ResyncPeriod: time.Minute, Coalesce: time.Second, SetNodeCondition: false,
		ExcludeNodeLabel: "example.com/no-route", SourceDestCheck: SourceDestCheckReport,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Config() = %+v, want %+v", cfg, want)
	}

	defaults, err := parse("--cluster-id=prod", "--cluster-cidr=10.0.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if defaults.Policy.MaxDeleteRatio != 0.5 || !defaults.SetNodeCondition || defaults.ResyncPeriod != DefaultResyncPeriod ||
		defaults.Coalesce != DefaultCoalesce || defaults.ExcludeNodeLabel != DefaultExcludeNodeLabel || defaults.DryRun {
		t.Errorf("defaults = %+v", defaults)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-cidr=10.0.0.0/16"}, "--cluster-id is required"},
		{[]string{"--cluster-id=prod"}, "--cluster-cidr is required"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=10.0.0.0"}, "is not a CIDR prefix"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=10.0.0.1/16"}, "host bits set"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=0.0.0.0/0"}, "0.0.0.0/0 covers the whole address family"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=10.0.0.0/8,::/0"}, "::/0 covers the whole address family"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=10.0.0.0/16", "--max-delete-ratio=1.5"}, "between 0 and 1"},
		{[]string{"--cluster-id=prod", "--cluster-cidr=10.0.0.0/16", "--resync-period=0s"}, "--resync-period"},
		{[]string{"--cluster-id=a;b", "--cluster-cidr=10.0.0.0/16"}, "--cluster-id"},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}
