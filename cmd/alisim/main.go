// Command alisim serves the Alibaba Cloud simulator of package
// pkg/cloud/alisim on three loopback listeners: the cloud API (VPC, ECS and
// STS), the ECS metadata service and the admin API. It prints one
// "name=host:port" line per listener once they accept connections, and
// stops cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func main() {
	os.Exit(exitCode(os.Args[1:]))
}

// exitCode runs the simulator until SIGTERM or SIGINT and returns the
// process exit status: 0 on a clean stop, 2 for bad flags, 1 otherwise.
func exitCode(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, args, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "alisim: %v\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "alisim: %v\n", err)
		return 1
	}
}

var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help requested")
)

type config struct {
	listen, metadataListen, adminListen string
	keyID, keySecret                    string
	stateFile                           string
	writeBase, writePerEntry            time.Duration
	entryPending, nextTokenTTL          time.Duration
	profile, ipVersionEncoding          string
	timestampWindow                     time.Duration
	timeScale                           float64
	metadataInstance, metadataRole      string
	allowIMDSv1                         bool
	throttles                           string
	ramPolicyFile                       string
	ecsDescribeDenial, vpcDenialCode    string
	verbose                             bool
	sourceDestCheckSince                string
	eniModifyDelay                      time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("alisim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:0", "address of the cloud API (VPC, ECS, STS); port 0 picks a free port")
	fs.StringVar(&c.metadataListen, "metadata-listen", "127.0.0.1:0", "address of the ECS metadata service; empty disables it")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:0", "address of the admin API; empty disables it")
	fs.StringVar(&c.keyID, "access-key-id", "", "access key ID accepted for every action (default $ALIBABA_CLOUD_ACCESS_KEY_ID)")
	fs.StringVar(&c.keySecret, "access-key-secret", "", "its secret (default $ALIBABA_CLOUD_ACCESS_KEY_SECRET)")
	fs.StringVar(&c.stateFile, "state", "", "JSON state file (the format of GET /admin/state); default: the documented default state")
	fs.DurationVar(&c.writeBase, "write-base", 0, "how long any route write keeps the VPC busy (default 50ms; negative: instantaneous)")
	fs.DurationVar(&c.writePerEntry, "write-per-entry", 0, "extra busy time per entry written (default 1ms; negative: none)")
	fs.StringVar(&c.profile, "profile", alisim.ProfileFast, "latency profile: "+strings.Join(alisim.Profiles(), " or ")+"; --write-base, --write-per-entry and --entry-pending override its values")
	fs.DurationVar(&c.entryPending, "entry-pending", 0, "how long written entries stay Pending at least, beyond the busy window (default: the busy window)")
	fs.DurationVar(&c.nextTokenTTL, "next-token-ttl", 0, "lifetime of a DescribeRouteEntryList NextToken (default 10m; negative: forever)")
	fs.StringVar(&c.ipVersionEncoding, "ip-version-encoding", alisim.IPVersionAny, "CreateRouteEntries IpVersion values accepted: any, integer (4/6) or name (IPv4/IPv6)")
	fs.DurationVar(&c.timestampWindow, "timestamp-window", 0, "accepted skew of request timestamps (default 15m)")
	fs.Float64Var(&c.timeScale, "time-scale", 1, "run simulated time this many times faster than real time")
	fs.StringVar(&c.metadataInstance, "metadata-instance-id", "", "instance the metadata service describes (default: the first instance)")
	fs.StringVar(&c.metadataRole, "metadata-role", alisim.DefaultRoleName, "RAM role attached to that instance")
	fs.BoolVar(&c.allowIMDSv1, "allow-imdsv1", false, "serve metadata GETs without an IMDSv2 session token")
	fs.StringVar(&c.throttles, "throttle", "", "comma-separated Action=QPS/Burst limits (Action * for every action)")
	fs.StringVar(&c.sourceDestCheckSince, "source-dest-check-since", "", "RFC 3339 date from which new instances get their ENI's source/destination check on (default 2025-04-22T00:00:00+08:00)")
	fs.DurationVar(&c.eniModifyDelay, "eni-modify-delay", 0, "how long an ENI attribute change takes to show (default 50ms; negative: instantaneous)")
	fs.StringVar(&c.ramPolicyFile, "ram-policy", "", "RAM policy JSON (the shape of deploy/ram-policy.json) enforced for the --access-key-id key; default: every action allowed")
	fs.StringVar(&c.ecsDescribeDenial, "ecs-describe-denial", alisim.ECSDenialEmptyList, "how ECS Describe actions refuse a key without the permission: empty-list (HTTP 200, documented) or forbidden (HTTP 403 Forbidden.RAM, ECS since 2025-12-20)")
	fs.StringVar(&c.vpcDenialCode, "vpc-denial-code", alisim.CodeForbiddenRAM, "code of a VPC action refused by RAM (HTTP 403): Forbidden.RAM or Forbbiden (sic, the VPC reference's error tables)")
	fs.BoolVar(&c.verbose, "v", false, "log every API call to stderr (never secrets)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if c.keyID == "" {
		c.keyID = os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID")
	}
	if c.keySecret == "" {
		c.keySecret = os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
	}
	if (c.keyID == "") != (c.keySecret == "") {
		return nil, fmt.Errorf("%w: --access-key-id and --access-key-secret go together", errUsage)
	}
	if c.ramPolicyFile != "" && c.keyID == "" {
		return nil, fmt.Errorf("%w: --ram-policy needs --access-key-id, the key it applies to", errUsage)
	}
	if c.timeScale <= 0 {
		return nil, fmt.Errorf("%w: --time-scale must be positive", errUsage)
	}
	return c, nil
}

// parseThrottles parses "Action=QPS/Burst,...".
func parseThrottles(spec string) ([]alisim.Throttle, error) {
	var out []alisim.Throttle
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		action, rate, ok := strings.Cut(item, "=")
		qpsStr, burstStr, ok2 := strings.Cut(rate, "/")
		if !ok || !ok2 || action == "" {
			return nil, fmt.Errorf("%w: --throttle %q is not Action=QPS/Burst", errUsage, item)
		}
		qps, err := strconv.ParseFloat(qpsStr, 64)
		if err != nil || qps <= 0 {
			return nil, fmt.Errorf("%w: --throttle %q: QPS must be a positive number", errUsage, item)
		}
		burst, err := strconv.Atoi(burstStr)
		if err != nil || burst < 1 {
			return nil, fmt.Errorf("%w: --throttle %q: Burst must be a positive integer", errUsage, item)
		}
		out = append(out, alisim.Throttle{Action: action, QPS: qps, Burst: burst})
	}
	return out, nil
}

// simOptions turns the flags into simulator options: the latency profile
// first, the explicit latency flags over it.
func (c *config) simOptions() (alisim.Options, error) {
	opts := alisim.Options{
		AccessKeyID: c.keyID, AccessKeySecret: c.keySecret,
		WriteBase: c.writeBase, WritePerEntry: c.writePerEntry, EntryPending: c.entryPending, TimestampWindow: c.timestampWindow,
		NextTokenTTL: c.nextTokenTTL, IPVersionEncoding: c.ipVersionEncoding,
		MetadataInstanceID: c.metadataInstance, MetadataRoleName: c.metadataRole, AllowIMDSv1: c.allowIMDSv1,
		ECSDescribeDenial: c.ecsDescribeDenial, VPCDenialCode: c.vpcDenialCode,
	}
	if err := opts.ApplyProfile(c.profile); err != nil {
		return alisim.Options{}, fmt.Errorf("%w: --profile: %w", errUsage, err)
	}
	switch c.ipVersionEncoding {
	case alisim.IPVersionAny, alisim.IPVersionInteger, alisim.IPVersionName:
	default:
		return alisim.Options{}, fmt.Errorf("%w: --ip-version-encoding %q: want %s, %s or %s", errUsage, c.ipVersionEncoding, alisim.IPVersionAny, alisim.IPVersionInteger, alisim.IPVersionName)
	}
	return opts, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	throttles, err := parseThrottles(c.throttles)
	if err != nil {
		return err
	}
	opts, err := c.simOptions()
	if err != nil {
		return err
	}
	if c.ramPolicyFile != "" {
		raw, err := os.ReadFile(c.ramPolicyFile)
		if err != nil {
			return fmt.Errorf("reading the RAM policy: %w", err)
		}
		if opts.RAMPolicy, err = alisim.ParsePolicy(raw); err != nil {
			return fmt.Errorf("%w: --ram-policy %s: %w", errUsage, c.ramPolicyFile, err)
		}
	}
	opts.ENIModifyDelay = c.eniModifyDelay
	if c.sourceDestCheckSince != "" {
		since, err := time.Parse(time.RFC3339, c.sourceDestCheckSince)
		if err != nil {
			return fmt.Errorf("%w: --source-dest-check-since: %w", errUsage, err)
		}
		opts.SourceDestCheckSince = since
	}
	if c.timeScale != 1 {
		opts.Clock = alisim.NewScaledClock(c.timeScale)
	}
	if c.verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if c.stateFile != "" {
		raw, err := os.ReadFile(c.stateFile)
		if err != nil {
			return fmt.Errorf("reading state: %w", err)
		}
		var st alisim.State
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decoding state %s: %w", c.stateFile, err)
		}
		opts.State = &st
	}
	sim, err := alisim.New(opts)
	if err != nil {
		return fmt.Errorf("building the simulator: %w", err)
	}
	for _, t := range throttles {
		sim.SetThrottle(t.Action, t.QPS, t.Burst)
	}
	servers := []struct {
		name, addr string
		handler    http.Handler
	}{
		{"api", c.listen, sim.APIHandler()},
		{"metadata", c.metadataListen, sim.MetadataHandler()},
		{"admin", c.adminListen, sim.AdminHandler()},
	}
	var running []*http.Server
	errc := make(chan error, len(servers))
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, srv := range running {
			_ = srv.Shutdown(shutdownCtx)
		}
	}()
	for _, s := range servers {
		if s.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listening for the %s on %s: %w", s.name, s.addr, err)
		}
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
		running = append(running, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving the %s: %w", s.name, err)
			}
		}()
		fmt.Fprintf(stdout, "%s=%s\n", s.name, ln.Addr())
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
