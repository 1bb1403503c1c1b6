package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PublisherOptions are the command-line settings of one publisher replica.
// Cloud endpoints and credentials come from the simulator; everything else
// has test-friendly defaults (short resync and coalesce, fast leader
// election).
type PublisherOptions struct {
	// Bin is the vpc-route-publisher binary.
	Bin string
	// Name names the replica in logs ("publisher-0").
	Name string
	// Dir receives the replica's log.
	Dir string
	// Kubeconfig is the service account's kubeconfig.
	Kubeconfig string
	// LeaseNamespace is where the leader-election Lease lives.
	LeaseNamespace string
	// ClusterID and ClusterCIDRs go to --cluster-id and --cluster-cidr.
	ClusterID    string
	ClusterCIDRs []string
	// CIDRSource is --cidr-source; empty means the default (auto).
	CIDRSource string
	// ResyncPeriod and SyncCoalesce default to 3s and 100ms.
	ResyncPeriod time.Duration
	SyncCoalesce time.Duration
	// CredentialsDir is --credentials-dir; empty means the simulator's
	// default key written by the harness.
	CredentialsDir string
	// ExtraArgs are appended last, so they override the defaults.
	ExtraArgs []string
}

// Publisher is one running replica.
type Publisher struct {
	*Process
	Endpoints
}

// Endpoints are the HTTP endpoints of a replica, whether it runs as a
// process of the harness or in a container.
type Endpoints struct {
	MetricsURL string
	HealthURL  string
}

// CloudArgs are the cloud flags that point the publisher (run or audit) at
// the simulator.
func (s *Alisim) CloudArgs() []string {
	return []string{
		"--region=" + s.Region,
		"--vpc-id=" + s.VPCID,
		"--vpc-endpoint=" + s.APIAddr,
		"--ecs-endpoint=" + s.APIAddr,
		"--sts-endpoint=" + s.APIAddr,
		"--metadata-endpoint=http://" + s.MetadataAddr,
		"--cloud-insecure-http",
	}
}

// StartPublisher starts a replica of `vpc-route-publisher run` and returns
// once its health endpoint answers (readiness is the test's business: a
// replica that is not the leader or has bad credentials is alive but not
// ready).
func StartPublisher(ctx context.Context, sim *Alisim, o PublisherOptions) (*Publisher, error) {
	metricsAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	healthAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if o.ResyncPeriod == 0 {
		o.ResyncPeriod = 3 * time.Second
	}
	if o.SyncCoalesce == 0 {
		o.SyncCoalesce = 100 * time.Millisecond
	}
	if o.CredentialsDir == "" {
		o.CredentialsDir = sim.CredentialsDir
	}
	args := []string{
		"run",
		"--kubeconfig=" + o.Kubeconfig,
		"--cluster-id=" + o.ClusterID,
		"--cluster-cidr=" + strings.Join(o.ClusterCIDRs, ","),
		"--credentials-dir=" + o.CredentialsDir,
		"--resync-period=" + o.ResyncPeriod.String(),
		"--sync-coalesce=" + o.SyncCoalesce.String(),
		"--metrics-bind-address=" + metricsAddr,
		"--health-bind-address=" + healthAddr,
		"--leader-elect-resource-namespace=" + o.LeaseNamespace,
		// Fast fail-over for the tests: a killed leader's lease expires in 4s.
		"--leader-elect-lease-duration=4s",
		"--leader-elect-renew-deadline=3s",
		"--leader-elect-retry-period=500ms",
		"--route-wait-timeout=30s",
		"--cloud-call-timeout=10s",
		"--cloud-qps=50",
		"--cloud-burst=100",
		// The RAM permissions are probed at start; a test that wants
		// periodic probes sets a shorter interval in ExtraArgs. The probes
		// of the route writes are write calls that write nothing.
		"--permission-check-interval=10m",
		"-v=4",
	}
	if o.CIDRSource != "" {
		args = append(args, "--cidr-source="+o.CIDRSource)
	}
	args = append(args, sim.CloudArgs()...)
	args = append(args, o.ExtraArgs...)
	p, err := StartProcess(o.Name, o.Dir, o.Bin, args, []string{"POD_NAMESPACE=" + o.LeaseNamespace, "POD_NAME=" + o.Name})
	if err != nil {
		return nil, err
	}
	pub := &Publisher{Process: p, Endpoints: NewEndpoints(metricsAddr, healthAddr)}
	if err := waitReady(ctx, p, time.Minute, pub.Healthy); err != nil {
		_ = p.Stop(DefaultStopTimeout)
		return nil, err
	}
	return pub, nil
}

// NewEndpoints returns the endpoints of a replica started with
// --metrics-bind-address=metricsAddr and --health-bind-address=healthAddr.
func NewEndpoints(metricsAddr, healthAddr string) Endpoints {
	return Endpoints{MetricsURL: "http://" + metricsAddr + "/metrics", HealthURL: "http://" + healthAddr}
}

// Healthy reports whether /healthz answers 200.
func (p Endpoints) Healthy(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return httpGetOK(ctx, client, p.HealthURL+"/healthz", "")
}

// Ready reports whether /readyz answers 200.
func (p Endpoints) Ready(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return httpGetOK(ctx, client, p.HealthURL+"/readyz", "")
}

// Metrics scrapes the replica's /metrics.
func (p Endpoints) Metrics(ctx context.Context) (Metrics, error) {
	return ScrapeMetrics(ctx, p.MetricsURL)
}

// IsLeader reports whether the replica's leader gauge is 1.
func (p Endpoints) IsLeader(ctx context.Context) bool {
	m, err := p.Metrics(ctx)
	return err == nil && m.Get("vpc_route_publisher_leader", nil) == 1
}

// AuditResult is the outcome of one `vpc-route-publisher audit` run.
type AuditResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// RunAudit runs `vpc-route-publisher audit` with the given source and cloud
// settings and output format, bounded by a one-minute deadline.
func RunAudit(ctx context.Context, sim *Alisim, o PublisherOptions, output string) (AuditResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if o.CredentialsDir == "" {
		o.CredentialsDir = sim.CredentialsDir
	}
	args := []string{
		"audit",
		"--kubeconfig=" + o.Kubeconfig,
		"--cluster-id=" + o.ClusterID,
		"--cluster-cidr=" + strings.Join(o.ClusterCIDRs, ","),
		"--credentials-dir=" + o.CredentialsDir,
		"--output=" + output,
	}
	if o.CIDRSource != "" {
		args = append(args, "--cidr-source="+o.CIDRSource)
	}
	args = append(args, sim.CloudArgs()...)
	args = append(args, o.ExtraArgs...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, o.Bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := AuditResult{ExitCode: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return res, fmt.Errorf("running audit: %w", err)
	}
	return res, nil
}

// WriteCredentials writes a --credentials-dir with the given key pair.
func WriteCredentials(dir, id, secret string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating credentials directory: %w", err)
	}
	for name, v := range map[string]string{"access-key-id": id, "access-key-secret": secret} {
		// Write then rename, as the kubelet's atomic writer does for a
		// mounted Secret, so that a watcher never reads half a key.
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(v), 0o600); err != nil {
			return fmt.Errorf("writing credential file %s: %w", name, err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("replacing credential file %s: %w", name, err)
		}
	}
	return nil
}
