package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// TestRunOnce: one pass, then exit 0 when every route was placed and 1 when
// some were not; leader election is off unless asked for.
func TestRunOnce(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-2vcxxs", "10.244.1.0/24"))
	code, _, stderr := invoke(t, c.env(), c.runArgs("--once", "--cidr-source=nodes")...)
	if code != exitOK {
		t.Fatalf("run --once: exit %d, stderr %q", code, stderr)
	}
	if got := strings.Join(c.availableRoutes(), ","); got != "10.244.0.0/24->i-2vcxxr,10.244.1.0/24->i-2vcxxs" {
		t.Errorf("after run --once: routes %s", got)
	}
	if leases, err := c.kube.CoordinationV1().Leases("").List(t.Context(), metav1.ListOptions{}); err != nil || len(leases.Items) != 0 {
		t.Errorf("run --once took a lease (%v, %v); leader election must be off by default", leases, err)
	}

	// A node whose instance does not exist: the pass runs but cannot
	// place its route.
	c = newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-gone", "10.244.1.0/24"))
	code, _, stderr = invoke(t, c.env(), c.runArgs("--once", "--cidr-source=nodes")...)
	if code != exitFailure || !strings.Contains(stderr, "--once") {
		t.Errorf("run --once with a node without instance: exit %d, stderr %q; want %d naming the pass", code, stderr, exitFailure)
	}

	// With --leader-elect given, the pass runs under the lease.
	c = newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
	code, _, stderr = invoke(t, c.env(), c.runArgs("--once", "--leader-elect", "--cidr-source=nodes")...)
	if code != exitOK {
		t.Fatalf("run --once --leader-elect: exit %d, stderr %q", code, stderr)
	}
	if got := strings.Join(c.availableRoutes(), ","); got != "10.244.0.0/24->i-2vcxxr" {
		t.Errorf("after run --once --leader-elect: routes %s", got)
	}
}

// TestAuditOnlyDriftAndDocument checks the JSON envelope and --only-drift.
func TestAuditOnlyDriftAndDocument(t *testing.T) {
	c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"), testNode("i-2vcxxs", "10.244.1.0/24"))
	if code, _, stderr := invoke(t, c.env(), c.runArgs("--once", "--cidr-source=nodes")...); code != exitOK {
		t.Fatalf("run --once: exit %d, stderr %q", code, stderr)
	}
	if err := c.kube.Tracker().Add(testNode("i-2vcxxt", "10.244.2.0/24")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := c.audit("-o", "json", "--only-drift", "--cidr-source=nodes")
	if code != exitFailure {
		t.Fatalf("audit with a new node: exit %d, stderr %q", code, stderr)
	}
	var doc struct {
		APIVersion string              `json:"apiVersion"`
		Kind       string              `json:"kind"`
		Summary    string              `json:"summary"`
		InSync     bool                `json:"inSync"`
		Routes     []route.RouteReport `json:"routes"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("audit JSON: %v\n%s", err, stdout)
	}
	if doc.APIVersion != route.ReportAPIVersion || doc.Kind != route.ReportKind || doc.InSync ||
		doc.Summary != "drift: 2 in-sync, 1 missing" || len(doc.Routes) != 1 || doc.Routes[0].Destination != "10.244.2.0/24" {
		t.Errorf("audit --only-drift document: %+v", doc)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestAuditUnreachableFailsWithTheCause: an API server or a cloud endpoint
// that cannot be reached fails the audit within --timeout, with exit code 2
// and the underlying cause in one sentence.
func TestAuditUnreachableFailsWithTheCause(t *testing.T) {
	t.Run("API server", func(t *testing.T) {
		addr := closedPort(t)
		kubeconfig := writeKubeconfig(t, map[string]string{"down": "https://" + addr}, "down")
		e := noClusterEnv(t)
		e.clients = defaultEnv().clients
		start := time.Now()
		code, _, stderr := invoke(t, e, with("audit", "--kubeconfig="+kubeconfig, "--timeout=20s")...)
		if code != exitUsage || !strings.Contains(stderr, "reading nodes from the API server https://"+addr) || !strings.Contains(stderr, "connection refused") {
			t.Errorf("exit %d, stderr %q; want %d with the server and the cause", code, stderr, exitUsage)
		}
		if strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr %q, want one line", stderr)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("cloud", func(t *testing.T) {
		c := newCluster(t, testNode("i-2vcxxr", "10.244.0.0/24"))
		addr := closedPort(t)
		start := time.Now()
		code, _, stderr := c.audit("--cidr-source=nodes", "--timeout=3s", "--vpc-endpoint="+addr)
		if code != exitUsage || !strings.Contains(stderr, "connecting to Alibaba Cloud") || !strings.Contains(stderr, addr) {
			t.Errorf("exit %d, stderr %q; want %d naming the endpoint", code, stderr, exitUsage)
		}
		if strings.Count(stderr, "\n") != 1 {
			t.Errorf("stderr %q, want one line", stderr)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %v with --timeout=3s", d)
		}
	})
}

// writeKubeconfig writes a kubeconfig with one cluster and context per
// server, the current one named current.
func writeKubeconfig(t *testing.T, servers map[string]string, current string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\ncurrent-context: " + current + "\nclusters:\n")
	for n, s := range servers {
		fmt.Fprintf(&b, "- name: %s\n  cluster:\n    server: %s\n    insecure-skip-tls-verify: true\n", n, s)
	}
	b.WriteString("contexts:\n")
	for n := range servers {
		fmt.Fprintf(&b, "- name: %s\n  context:\n    cluster: %s\n    user: u\n", n, n)
	}
	b.WriteString("users:\n- name: u\n  user:\n    token: t\n")
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKubeconfigLoadsTheKubectlWay: --kubeconfig, else $KUBECONFIG (else
// ~/.kube/config, else in-cluster), with --context choosing a context.
func TestKubeconfigLoadsTheKubectlWay(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", "")
	// ~/.kube/config is resolved when client-go is loaded, before any
	// test can move HOME: it is only checked when this machine has none.
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); errors.Is(err, os.ErrNotExist) {
		if _, err := newKubeClients("", ""); err == nil || !strings.Contains(err.Error(), "no Kubernetes configuration") {
			t.Errorf("nothing configured: err = %v", err)
		}
	}
	env := writeKubeconfig(t, map[string]string{"a": "https://127.0.0.2:6443", "b": "https://127.0.0.3:6443"}, "a")
	explicit := writeKubeconfig(t, map[string]string{"x": "https://127.0.0.4:6443"}, "x")
	for _, tc := range []struct {
		name, kubeconfigEnv, flag, context, want string
	}{
		{"KUBECONFIG", env, "", "", "https://127.0.0.2:6443"},
		{"--context", env, "", "b", "https://127.0.0.3:6443"},
		{"--kubeconfig over KUBECONFIG", env, explicit, "", "https://127.0.0.4:6443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.kubeconfigEnv)
			c, err := newKubeClients(tc.flag, tc.context)
			if err != nil || c.host != tc.want {
				t.Fatalf("host %v, err %v; want %s", c, err, tc.want)
			}
		})
	}
	t.Setenv("KUBECONFIG", env)
	if _, err := newKubeClients("", "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown context: err = %v", err)
	}
}

// TestHelpGroupsLoggingFlagsAndNamesExitCodes checks --help lists our flags,
// then the logging flags apart, then the exit codes.
func TestHelpGroupsLoggingFlagsAndNamesExitCodes(t *testing.T) {
	for _, sub := range []string{"run", "audit"} {
		code, stdout, _ := invoke(t, noClusterEnv(t), sub, "--help")
		ours, logging, ok := strings.Cut(stdout, "\nLogging flags:\n")
		if code != exitOK || !ok {
			t.Fatalf("%s --help: exit %d, no logging section:\n%s", sub, code, stdout)
		}
		if !strings.Contains(ours, "--cluster-id") || strings.Contains(ours, "--logging-format") || strings.Contains(ours, "--vmodule") {
			t.Errorf("%s --help, own flags:\n%s", sub, ours)
		}
		if !strings.Contains(logging, "--logging-format") || !strings.Contains(logging, "-v, --v") || strings.Contains(logging, "--cluster-id") {
			t.Errorf("%s --help, logging flags:\n%s", sub, logging)
		}
		if !strings.Contains(logging, "Exit codes: 0 ") {
			t.Errorf("%s --help does not list the exit codes:\n%s", sub, stdout)
		}
	}
	code, _, stderr := invoke(t, noClusterEnv(t), with("run", "--logging-format=xml")...)
	if code != exitUsage || !strings.Contains(stderr, "logging") {
		t.Errorf("--logging-format=xml: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = invoke(t, noClusterEnv(t), with("audit", "--timeout=0s")...)
	if code != exitUsage || !strings.Contains(stderr, "--timeout must be positive") {
		t.Errorf("--timeout=0s: exit %d, stderr %q", code, stderr)
	}
}

// TestLoggingFormatJSON runs the real main, with the process-wide logging
// configuration applied, in a child process: --logging-format=json writes
// one JSON object per log line.
func TestLoggingFormatJSON(t *testing.T) {
	if args := os.Getenv("VRP_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{name}, strings.Fields(args)...)
		main()
		return
	}
	kubeconfig := writeKubeconfig(t, map[string]string{"down": "https://" + closedPort(t)}, "down")
	args := strings.Join(with("run", "--once", "--logging-format=json", "--kubeconfig="+kubeconfig,
		"--metrics-bind-address=127.0.0.1:0", "--health-bind-address=127.0.0.1:0",
		"--region=cn-chengdu", "--vpc-id=vpc-1", "--vpc-endpoint=127.0.0.1:1", "--ecs-endpoint=127.0.0.1:1",
		"--cloud-config=/nonexistent/cloud-config.conf"), " ")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLoggingFormatJSON$")
	cmd.Env = append(os.Environ(), "VRP_TEST_MAIN_ARGS="+args)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitUsage {
		t.Fatalf("child: %v, want exit %d (no cloud-config)\n%s", err, exitUsage, out)
	}
	found := false
	for line := range strings.SplitSeq(string(out), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		if entry["msg"] == "Starting" && entry["clusterID"] == "test" {
			found = true
		}
	}
	if !found {
		t.Errorf("no JSON \"Starting\" line in:\n%s", out)
	}
}
