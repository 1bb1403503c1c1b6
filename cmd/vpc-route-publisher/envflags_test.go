package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// withEnviron is env e with the given process environment.
func withEnviron(e env, environ ...string) env {
	e.environ = func() []string { return environ }
	return e
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"cluster-cidr": "VPC_ROUTE_PUBLISHER_CLUSTER_CIDR", "v": "VPC_ROUTE_PUBLISHER_V",
		"logging-format": "VPC_ROUTE_PUBLISHER_LOGGING_FORMAT", "leader-elect-resource-namespace": "VPC_ROUTE_PUBLISHER_LEADER_ELECT_RESOURCE_NAMESPACE",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

// parseRun parses run's flags from args and environ as the command does.
func parseRun(t *testing.T, args []string, environ ...string) (*runOptions, envSource) {
	t.Helper()
	o := newRunOptions(func(string) string { return "" })
	var stderr strings.Builder
	src, code, done := parseFlags(o.flagSet(), o.loggingFlags(), args, environ, "run", &strings.Builder{}, &stderr)
	if done {
		t.Fatalf("parsing %v with %v: exit %d, %s", args, environ, code, stderr.String())
	}
	return o, src
}

// TestEnvPrecedence: a flag on the command line wins over its variable, the
// variable over the default; an empty variable counts as unset.
func TestEnvPrecedence(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "POD_NAMESPACE=ops",
		"VPC_ROUTE_PUBLISHER_CLUSTER_ID=from-env",
		"VPC_ROUTE_PUBLISHER_CLUSTER_CIDR=10.244.0.0/16,fd00:10:244::/56",
		"VPC_ROUTE_PUBLISHER_CLOUD_QPS=7",
		"VPC_ROUTE_PUBLISHER_DRY_RUN=true",
		"VPC_ROUTE_PUBLISHER_RESYNC_PERIOD=", // empty: the default
		"VPC_ROUTE_PUBLISHER_V=4",
		"VPC_ROUTE_PUBLISHER_LOGGING_FORMAT=json",
	}
	o, src := parseRun(t, []string{"--cluster-id=from-flag", "--cloud-qps=9"}, environ...)
	if o.route.ClusterID != "from-flag" || o.cloud.QPS != 9 {
		t.Errorf("flags given on the command line: cluster ID %q, QPS %v; want from-flag and 9", o.route.ClusterID, o.cloud.QPS)
	}
	if !slices.Equal(o.route.ClusterCIDRs, []string{"10.244.0.0/16", "fd00:10:244::/56"}) || !o.route.DryRun {
		t.Errorf("from the environment: cluster CIDRs %v, dry run %v", o.route.ClusterCIDRs, o.route.DryRun)
	}
	if o.logging.Verbosity != 4 || o.logging.Format != "json" {
		t.Errorf("logging from the environment: -v %v, format %q; want 4 and json", o.logging.Verbosity, o.logging.Format)
	}
	if def := newRunOptions(func(string) string { return "" }); o.route.ResyncPeriod != def.route.ResyncPeriod || o.route.Coalesce != def.route.Coalesce {
		t.Errorf("unset and empty variables: resync %v, coalesce %v; want the defaults %v, %v", o.route.ResyncPeriod, o.route.Coalesce, def.route.ResyncPeriod, def.route.Coalesce)
	}
	want := envSource{"cluster-cidr": "VPC_ROUTE_PUBLISHER_CLUSTER_CIDR", "dry-run": "VPC_ROUTE_PUBLISHER_DRY_RUN", "v": "VPC_ROUTE_PUBLISHER_V", "logging-format": "VPC_ROUTE_PUBLISHER_LOGGING_FORMAT"}
	if len(src) != len(want) {
		t.Errorf("flags recorded as set by the environment: %v, want %v", src, want)
	}
	for f, v := range want {
		if src[f] != v {
			t.Errorf("--%s recorded as set by %q, want %q", f, src[f], v)
		}
	}
}

// TestEnvTyposAreErrors: a variable of the prefix that names no flag of run
// or audit stops either subcommand, naming it.
func TestEnvTyposAreErrors(t *testing.T) {
	for _, sub := range []string{"run", "audit"} {
		e := withEnviron(noClusterEnv(t), "VPC_ROUTE_PUBLISHER_CLUSTR_ID=test", "VPC_ROUTE_PUBLISHER_CLUSTER_CIDR=10.244.0.0/16")
		code, _, stderr := invoke(t, e, sub, "--cluster-id=test")
		if code != exitUsage || !strings.Contains(stderr, "environment variable VPC_ROUTE_PUBLISHER_CLUSTR_ID names no flag") || strings.Contains(stderr, "CLUSTER_CIDR") {
			t.Errorf("%s with a misspelt variable: exit %d, stderr %q; want %d naming only VPC_ROUTE_PUBLISHER_CLUSTR_ID", sub, code, stderr, exitUsage)
		}
	}
}

// TestEnvOfTheOtherSubcommandIsIgnored: the pod's environment sets run's
// own flags (leader election, bind addresses), which audit has not; audit
// ignores them, and run ignores audit's.
func TestEnvOfTheOtherSubcommandIsIgnored(t *testing.T) {
	reached := errTest
	e := testEnv()
	e.clients = func(string, string) (*kubeClients, error) { return nil, reached }
	audit := withEnviron(e, "VPC_ROUTE_PUBLISHER_LEADER_ELECT=true", "VPC_ROUTE_PUBLISHER_METRICS_BIND_ADDRESS=$(HOST_IP):10290",
		"VPC_ROUTE_PUBLISHER_DRY_RUN=false", "VPC_ROUTE_PUBLISHER_ONCE=false")
	if code, _, stderr := invoke(t, audit, with("audit")...); code != exitUsage || !strings.Contains(stderr, reached.Error()) {
		t.Errorf("audit with run's variables: exit %d, stderr %q; want it to get as far as the clients", code, stderr)
	}
	run := withEnviron(e, "VPC_ROUTE_PUBLISHER_OUTPUT=json", "VPC_ROUTE_PUBLISHER_ONLY_DRIFT=true", "VPC_ROUTE_PUBLISHER_TIMEOUT=bogus")
	if code, _, stderr := invoke(t, run, with("run")...); code != exitUsage || !strings.Contains(stderr, reached.Error()) {
		t.Errorf("run with audit's variables: exit %d, stderr %q; want it to get as far as the clients", code, stderr)
	}
}

// TestEnvBadValues: a value a flag refuses gives the flag's own error,
// naming the variable; a configuration error about a flag set by a
// variable names the variable too.
func TestEnvBadValues(t *testing.T) {
	tests := []struct {
		sub, variable, value string
		// flagWant is what the same value given as the flag says.
		flagWant string
		// envWant is added when the value came from the variable.
		envWant string
	}{
		{"run", "VPC_ROUTE_PUBLISHER_CLOUD_QPS", "fast", `invalid argument "fast" for "--cloud-qps" flag`, "$VPC_ROUTE_PUBLISHER_CLOUD_QPS: "},
		{"audit", "VPC_ROUTE_PUBLISHER_TIMEOUT", "10", `invalid argument "10" for "--timeout" flag`, "$VPC_ROUTE_PUBLISHER_TIMEOUT: "},
		{"run", "VPC_ROUTE_PUBLISHER_LEADER_ELECT", "yes", `invalid argument "yes" for "--leader-elect" flag`, "$VPC_ROUTE_PUBLISHER_LEADER_ELECT: "},
		{"audit", "VPC_ROUTE_PUBLISHER_CLUSTER_CIDR", "0.0.0.0/0", "covers the whole", "(--cluster-cidr is set by $VPC_ROUTE_PUBLISHER_CLUSTER_CIDR)"},
		{"run", "VPC_ROUTE_PUBLISHER_CIDR_SOURCE", "ipam", "--cidr-source", "(--cidr-source is set by $VPC_ROUTE_PUBLISHER_CIDR_SOURCE)"},
		{"run", "VPC_ROUTE_PUBLISHER_METRICS_BIND_ADDRESS", "10290", "--metrics-bind-address", "(--metrics-bind-address is set by $VPC_ROUTE_PUBLISHER_METRICS_BIND_ADDRESS)"},
		{"audit", "VPC_ROUTE_PUBLISHER_LOGGING_FORMAT", "xml", "xml", "(--logging-format is set by $VPC_ROUTE_PUBLISHER_LOGGING_FORMAT)"},
	}
	for _, tc := range tests {
		flag := "--" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(tc.variable, envPrefix), "_", "-"))
		args := []string{tc.sub, "--cluster-id=test"}
		if tc.variable != "VPC_ROUTE_PUBLISHER_CLUSTER_CIDR" {
			args = append(args, "--cluster-cidr=10.244.0.0/16")
		}
		code, _, flagErr := invoke(t, noClusterEnv(t), append(slices.Clone(args), flag+"="+tc.value)...)
		if code != exitUsage || !strings.Contains(flagErr, tc.flagWant) {
			t.Errorf("%s %s=%s: exit %d, stderr %q; want %d with %q", tc.sub, flag, tc.value, code, flagErr, exitUsage, tc.flagWant)
		}
		code, _, envErr := invoke(t, withEnviron(noClusterEnv(t), tc.variable+"="+tc.value), args...)
		if code != exitUsage || !strings.Contains(envErr, tc.flagWant) || !strings.Contains(envErr, tc.envWant) {
			t.Errorf("%s with %s=%s: exit %d, stderr %q; want %d with %q and %q", tc.sub, tc.variable, tc.value, code, envErr, exitUsage, tc.flagWant, tc.envWant)
		}
	}
	// A flag given on the command line is not blamed on a variable.
	code, _, stderr := invoke(t, withEnviron(noClusterEnv(t), "VPC_ROUTE_PUBLISHER_CIDR_SOURCE=nodes"), "run", "--cluster-id=test", "--cluster-cidr=0.0.0.0/0")
	if code != exitUsage || strings.Contains(stderr, "VPC_ROUTE_PUBLISHER") {
		t.Errorf("a bad flag with an unrelated variable: exit %d, stderr %q", code, stderr)
	}
}

// TestHelpNamesTheVariables: --help shows each flag's variable, the logging
// flags' too.
func TestHelpNamesTheVariables(t *testing.T) {
	for sub, want := range map[string][]string{
		"run":   {"[$VPC_ROUTE_PUBLISHER_CLUSTER_ID]", "[$VPC_ROUTE_PUBLISHER_LEADER_ELECT]", "[$VPC_ROUTE_PUBLISHER_LOGGING_FORMAT]", "[$VPC_ROUTE_PUBLISHER_V]", "a flag on the command line wins"},
		"audit": {"[$VPC_ROUTE_PUBLISHER_CLUSTER_CIDR]", "[$VPC_ROUTE_PUBLISHER_OUTPUT]", "[$VPC_ROUTE_PUBLISHER_TIMEOUT]", "each subcommand ignores the other's"},
	} {
		code, stdout, _ := invoke(t, noClusterEnv(t), sub, "--help")
		if code != exitOK {
			t.Fatalf("%s --help: exit %d", sub, code)
		}
		for _, w := range want {
			if !strings.Contains(stdout, w) {
				t.Errorf("%s --help lacks %q:\n%s", sub, w, stdout)
			}
		}
	}
}

// TestOnceWithLeaderElectionFromEnv: --leader-elect set by its variable is
// given explicitly, so --once runs under the lease.
func TestOnceWithLeaderElectionFromEnv(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	e := withEnviron(c.env(), "VPC_ROUTE_PUBLISHER_LEADER_ELECT=true", "VPC_ROUTE_PUBLISHER_LEADER_ELECT_RESOURCE_NAMESPACE=ops")
	if code, _, stderr := invoke(t, e, c.runArgs("--once", "--cidr-source=nodes")...); code != exitOK {
		t.Fatalf("run --once: exit %d, stderr %q", code, stderr)
	}
	if _, err := c.kube.CoordinationV1().Leases("ops").Get(t.Context(), defaultLeaseName, metav1.GetOptions{}); err != nil {
		t.Errorf("run --once with VPC_ROUTE_PUBLISHER_LEADER_ELECT=true took no lease in ops: %v", err)
	}
}

// deploymentEnviron is the environment the kubelet gives the container of
// deploy/base's Deployment, in namespace kube-system.
func deploymentEnviron(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(b, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"run"}) {
		t.Errorf("the Deployment's args are %q; its configuration belongs in its env", c.Args)
	}
	var environ []string
	for _, v := range c.Env {
		switch {
		case v.ValueFrom == nil:
			environ = append(environ, v.Name+"="+v.Value)
		case v.ValueFrom.FieldRef != nil && v.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			environ = append(environ, v.Name+"=kube-system")
		default:
			t.Fatalf("env %s: source %+v not reproduced by this test", v.Name, v.ValueFrom)
		}
	}
	return environ
}

// flagsAsEnv turns --flag=value arguments into the variables an overlay sets.
func flagsAsEnv(args []string) []string {
	var environ []string
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok {
			value = "true"
		}
		environ = append(environ, envName(name)+"="+value)
	}
	return environ
}

// TestAuditReadsTheDeploymentsConfiguration runs `run --once` and then
// `audit` with no flags at all, in the environment of the Deployment of
// deploy/base plus what an overlay adds (the cluster's ID and CIDRs) and what
// must differ outside a cluster (the simulator's endpoints and credentials,
// loopback bind addresses): `kubectl exec deploy/vpc-route-publisher --
// vpc-route-publisher audit` as the docs show it.
func TestAuditReadsTheDeploymentsConfiguration(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-2vcxxs", "10.244.1.0/24"))
	environ := deploymentEnviron(t)
	for _, want := range []string{"VPC_ROUTE_PUBLISHER_LEADER_ELECT=true", "VPC_ROUTE_PUBLISHER_CREDENTIAL_SOURCE=credentials-dir", "VPC_ROUTE_PUBLISHER_CIDR_SOURCE=auto"} {
		if !slices.Contains(environ, want) {
			t.Errorf("the Deployment's environment lacks %s: %v", want, environ)
		}
	}
	environ = append(environ, flagsAsEnv([]string{"--cluster-id=test", "--cluster-cidr=10.244.0.0/16"})...)
	environ = append(environ, flagsAsEnv(c.cloudArgs())...)
	environ = append(environ, flagsAsEnv([]string{"--metrics-bind-address=127.0.0.1:0", "--health-bind-address=127.0.0.1:0"})...)
	e := withEnviron(c.env(), environ...)

	if code, _, stderr := invoke(t, e, "run", "--once"); code != exitOK {
		t.Fatalf("run --once in the Deployment's environment: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := invoke(t, e, "audit")
	if code != exitOK || !strings.Contains(stdout, "10.244.1.0/24") || !strings.Contains(stdout, "in sync") {
		t.Fatalf("audit in the Deployment's environment: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	entries, err := c.sim.Sim.Routes(alisim.DefaultTableID)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Destination.String() == "10.244.1.0/24" {
			if err := c.sim.Sim.DeleteRoute(en.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "route deleted out of band", func() (bool, string) {
		got := strings.Join(c.availableRoutes(), ",")
		return got == "10.244.0.0/24->i-2vcxxr", got
	})
	code, stdout, stderr = invoke(t, e, "audit", "--only-drift")
	if code != exitFailure || !strings.Contains(stdout, "missing") {
		t.Errorf("audit --only-drift after a route was deleted: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}
