package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// testEnv is the real environment, except that the logging flags are only
// validated (applying them is global to the test process) and that the
// process's environment variables are not read.
func testEnv() env {
	e := defaultEnv()
	e.environ = func() []string { return nil }
	e.applyLogging = func(ctx context.Context, c *logsapi.LoggingConfiguration) (context.Context, error) {
		return ctx, logsapi.Validate(c, nil, nil).ToAggregate()
	}
	return e
}

// noClusterEnv fails the test if the command gets as far as building
// clients or connecting to the cloud.
func noClusterEnv(t *testing.T) env {
	e := testEnv()
	e.clients = func(string, string) (*kubeClients, error) {
		t.Error("clients built although the configuration is invalid")
		return nil, errors.New("no clients in this test")
	}
	e.connect = func(context.Context, *cloud.Options, string, prometheus.Registerer) (*cloudAccess, error) {
		t.Error("cloud connected although the configuration is invalid")
		return nil, errors.New("no cloud in this test")
	}
	e.getenv = func(string) string { return "" }
	return e
}

func invoke(t *testing.T, e env, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut, e)
	return code, out.String(), errOut.String()
}

var required = []string{"--cluster-id=test", "--cluster-cidr=10.244.0.0/16,fd00:10:244::/56"}

// with returns the arguments of a subcommand with the required flags.
func with(sub string, args ...string) []string {
	return append(append([]string{sub}, required...), args...)
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "a subcommand is required"},
		{"unknown subcommand", []string{"publish"}, `unknown subcommand "publish"`},
		{"version argument", []string{"version", "now"}, `unexpected argument "now"`},
		{"missing cluster ID", []string{"run", "--cluster-cidr=10.244.0.0/16"}, "--cluster-id is required"},
		{"missing cluster CIDR", []string{"audit", "--cluster-id=test"}, "--cluster-cidr is required"},
		{"bad cluster CIDR", []string{"run", "--cluster-id=test", "--cluster-cidr=10.244.0.0/33"}, "--cluster-cidr"},
		{"cluster CIDR with host bits", []string{"run", "--cluster-id=test", "--cluster-cidr=10.244.0.1/16"}, "host bits"},
		{"unknown flag", with("run", "--publish-everything"), "unknown flag: --publish-everything"},
		{"run flag on audit", with("audit", "--dry-run"), "unknown flag: --dry-run"},
		{"positional argument", with("run", "now"), `unexpected argument "now"`},
		{"bad CIDR source", with("run", "--cidr-source=cilium"), "--cidr-source"},
		{"bad delete ratio", with("run", "--max-delete-ratio=2"), "--max-delete-ratio"},
		{"bad resync period", with("run", "--resync-period=0s"), "--resync-period"},
		{"bad duration", with("run", "--resync-period=often"), "--resync-period"},
		{"bad cloud QPS", with("run", "--cloud-qps=-1"), "--cloud-qps"},
		{"bad metrics address", with("run", "--metrics-bind-address=10290"), "--metrics-bind-address"},
		{"bad health port", with("run", "--health-bind-address=:http-alt"), "--health-bind-address"},
		{"same addresses", with("run", "--metrics-bind-address=:9000", "--health-bind-address=:9000"), "must differ"},
		{"lease shorter than renewal", with("run", "--leader-elect-lease-duration=5s"), "--leader-elect-lease-duration"},
		{"renewal shorter than retry", with("run", "--leader-elect-renew-deadline=2s"), "--leader-elect-renew-deadline"},
		{"no retry period", with("run", "--leader-elect-retry-period=0s"), "--leader-elect-retry-period"},
		{"empty lease name", with("run", "--leader-elect-resource-name="), "--leader-elect-resource-name"},
		{"bad output", with("audit", "-o", "xml"), "--output must be table, json or yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := invoke(t, noClusterEnv(t), tt.args...)
			if code != exitUsage {
				t.Errorf("exit code = %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, ".\n") {
				t.Errorf("stderr = %q, want one sentence on one line", stderr)
			}
		})
	}
}

// TestLeaderElectionFlagsIgnoredWithoutElection: the lease timings are not
// checked when no lease is taken.
func TestLeaderElectionFlagsIgnoredWithoutElection(t *testing.T) {
	o := newRunOptions(func(string) string { return "" })
	fs := o.flagSet()
	if err := fs.Parse(with("run", "--leader-elect=false", "--leader-elect-lease-duration=1s")[1:]); err != nil {
		t.Fatal(err)
	}
	if _, err := o.validate(); err != nil {
		t.Errorf("validate = %v, want nil", err)
	}
}

func TestClientErrorsAreUsageErrors(t *testing.T) {
	e := noClusterEnv(t)
	e.clients = defaultEnv().clients
	missing := filepath.Join(t.TempDir(), "kubeconfig")
	code, _, stderr := invoke(t, e, with("audit", "--kubeconfig="+missing)...)
	if code != exitUsage || !strings.Contains(stderr, "loading --kubeconfig "+missing) {
		t.Errorf("exit code %d, stderr %q; want %d and the kubeconfig named", code, stderr, exitUsage)
	}
}

func TestLeaseNamespaceFromEnvironment(t *testing.T) {
	o := newRunOptions(func(k string) string {
		if k == "POD_NAMESPACE" {
			return "networking"
		}
		return ""
	})
	if o.leaseNamespace != "networking" {
		t.Errorf("lease namespace = %q, want networking from $POD_NAMESPACE", o.leaseNamespace)
	}
	if o := newRunOptions(func(string) string { return "" }); o.leaseNamespace != "kube-system" {
		t.Errorf("lease namespace = %q, want kube-system", o.leaseNamespace)
	}
}

// specFlags are the flags of the shared command-line contract.
var (
	specCommonFlags = []string{
		"kubeconfig", "cluster-id", "cluster-cidr", "cidr-source", "adopt-unmarked", "max-delete-ratio", "exclude-node-label",
		"cloud-config", "region", "vpc-id", "route-table-ids", "vpc-endpoint", "ecs-endpoint", "sts-endpoint",
		"metadata-endpoint", "cloud-insecure-http", "cloud-qps", "cloud-burst", "cloud-call-timeout",
		"route-wait-timeout", "route-table-quota", "credentials-dir", "ram-role", "credential-source",
	}
	// specLoggingFlags are component-base's, in a set of their own.
	specLoggingFlags = []string{"v", "vmodule", "logging-format"}
	specRunFlags     = []string{
		"dry-run", "resync-period", "sync-coalesce", "set-node-condition", "metrics-bind-address", "health-bind-address",
		"leader-elect", "leader-elect-lease-duration", "leader-elect-renew-deadline", "leader-elect-retry-period",
		"leader-elect-resource-name", "leader-elect-resource-namespace",
	}
)

func TestFlagsMatchTheContract(t *testing.T) {
	getenv := func(string) string { return "" }
	check := func(fs *pflag.FlagSet, want, notWant []string) {
		t.Helper()
		for _, f := range want {
			flag := fs.Lookup(f)
			if flag == nil {
				t.Errorf("%s: flag --%s missing", fs.Name(), f)
				continue
			}
			if strings.TrimSpace(flag.Usage) == "" {
				t.Errorf("%s: flag --%s has no help text", fs.Name(), f)
			}
		}
		for _, f := range notWant {
			if fs.Lookup(f) != nil {
				t.Errorf("%s: flag --%s must not be there", fs.Name(), f)
			}
		}
		fs.VisitAll(func(f *pflag.Flag) {
			if strings.TrimSpace(f.Usage) == "" {
				t.Errorf("%s: flag --%s has no help text", fs.Name(), f.Name)
			}
		})
	}
	runOpts := newRunOptions(getenv)
	check(runOpts.flagSet(), append(append([]string{"once"}, specCommonFlags...), specRunFlags...), append([]string{"output", "context"}, specLoggingFlags...))
	check(runOpts.loggingFlags(), specLoggingFlags, specCommonFlags)
	audit := newAuditOptions().flagSet()
	check(audit, append([]string{"output", "only-drift", "timeout", "context"}, specCommonFlags...), append([]string{"once"}, append(specRunFlags, specLoggingFlags...)...))
	if f := audit.ShorthandLookup("o"); f == nil || f.Name != "output" {
		t.Error("audit: -o is not --output")
	}

	defaults := map[string]string{
		"cidr-source": "auto", "adopt-unmarked": "false", "max-delete-ratio": "0.5", "resync-period": "5m0s",
		"sync-coalesce": "500ms", "set-node-condition": "true", "exclude-node-label": "route.vpc-route-publisher.io/exclude",
		"metrics-bind-address": ":10290", "health-bind-address": ":10291", "leader-elect": "true",
		"leader-elect-lease-duration": "15s", "leader-elect-renew-deadline": "10s", "leader-elect-retry-period": "2s",
		"leader-elect-resource-name": "vpc-route-publisher", "leader-elect-resource-namespace": "kube-system",
		"metadata-endpoint": "http://100.100.100.200", "cloud-qps": "10", "cloud-burst": "20", "cloud-call-timeout": "30s",
		"route-wait-timeout": "2m0s", "route-table-quota": "200", "dry-run": "false",
	}
	fs := newRunOptions(getenv).flagSet()
	for f, want := range defaults {
		if got := fs.Lookup(f).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", f, got, want)
		}
	}
	if got := newAuditOptions().flagSet().Lookup("output").DefValue; got != "table" {
		t.Errorf("--output defaults to %q, want table", got)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, stdout, stderr := invoke(t, noClusterEnv(t), args...)
		if code != exitOK || !strings.Contains(stdout, "vpc-route-publisher audit [flags]") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	for _, sub := range []string{"run", "audit"} {
		code, stdout, stderr := invoke(t, noClusterEnv(t), sub, "--help")
		if code != exitOK || !strings.Contains(stdout, "--cluster-cidr") || !strings.Contains(stdout, "--cidr-source") || stderr != "" {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", sub, code, stdout, stderr)
		}
	}
	if code, stdout, _ := invoke(t, noClusterEnv(t), "version", "--help"); code != exitOK || !strings.Contains(stdout, "vpc-route-publisher version") {
		t.Errorf("version --help: exit %d, stdout %q", code, stdout)
	}
	code, stdout, _ := invoke(t, noClusterEnv(t), "version")
	if code != exitOK || stdout != version.String(name)+"\n" {
		t.Errorf("version: exit %d, stdout %q", code, stdout)
	}
}

// TestNormalizeBindAddress covers the bind addresses the flags accept,
// including the node's IPv6 address substituted without brackets by the
// manifests' $(HOST_IP).
func TestNormalizeBindAddress(t *testing.T) {
	for addr, want := range map[string]string{
		":10290": ":10290", "127.0.0.1:0": "127.0.0.1:0", "[::1]:8080": "[::1]:8080", "0.0.0.0:65535": "0.0.0.0:65535",
		"fd00::1:10290": "[fd00::1]:10290", "192.168.0.7:10290": "192.168.0.7:10290",
		"10290": "", ":": "", ":65536": "", "localhost:http": "", "": "", "fd00::1": "", "1.2.3.4:5:6": "",
	} {
		got, err := normalizeBindAddress(addr)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("normalizeBindAddress(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

// writeCredentials writes a credentials directory as a mounted Secret does.
func writeCredentials(t *testing.T, id, secret string) string {
	t.Helper()
	dir := t.TempDir()
	for file, v := range map[string]string{cloud.FileAccessKeyID: id, cloud.FileAccessKeySecret: secret} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// listeners collects the addresses of the command's HTTP servers.
type listeners struct {
	addrs chan string
}

func newListeners() *listeners { return &listeners{addrs: make(chan string, 4)} }

// record keeps the first addresses; later replicas' are not needed.
func (l *listeners) record(server string, addr net.Addr) {
	select {
	case l.addrs <- server + "=" + addr.String():
	default:
	}
}

// wait returns the address of each server once both listen.
func (l *listeners) wait(ctx context.Context) (health, metrics string, err error) {
	for health == "" || metrics == "" {
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("servers did not listen: %w", ctx.Err())
		case a := <-l.addrs:
			server, addr, _ := strings.Cut(a, "=")
			if server == "health" {
				health = addr
			} else {
				metrics = addr
			}
		}
	}
	return health, metrics, nil
}

var errTest = errors.New("test failure")

func TestTransientCloudErrors(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("describing VPC: %w", route.ErrUnauthorized): true,
		fmt.Errorf("describing VPC: %w", cloud.ErrNetwork):      true,
		fmt.Errorf("describing VPC: %w", route.ErrThrottled):    true,
		&cloud.CredentialError{Source: "credentials-dir"}:       true,
		fmt.Errorf("describing VPC: %w", route.ErrNotFound):     false,
		fmt.Errorf("describing VPC: %w", route.ErrInvalid):      false,
		errTest: false,
	} {
		if got := transientCloudError(err); got != want {
			t.Errorf("transientCloudError(%v) = %v, want %v", err, got, want)
		}
	}
}
