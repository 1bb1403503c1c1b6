package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/leaderelection"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // the json format of --logging-format

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/ipam"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// Defaults of the command's own flags.
const (
	defaultMetricsAddr    = ":10290"
	defaultHealthAddr     = ":10291"
	defaultLeaseDuration  = 15 * time.Second
	defaultRenewDeadline  = 10 * time.Second
	defaultRetryPeriod    = 2 * time.Second
	defaultLeaseName      = "vpc-route-publisher"
	defaultLeaseNamespace = "kube-system"
)

// commonOptions are the flags of run and audit: where the desired state
// comes from, what is ours, and how to reach the cloud.
type commonOptions struct {
	kubeconfig string
	// kubeContext is audit's --context; run uses the current context.
	kubeContext string
	cidrSource  string
	logging     *logsapi.LoggingConfiguration
	route       *route.Options
	cloud       *cloud.Options
}

func newCommonOptions() commonOptions {
	return commonOptions{
		cidrSource: string(ipam.ModeAuto),
		logging:    logsapi.NewLoggingConfiguration(),
		route:      route.NewOptions(),
		cloud:      cloud.NewOptions(),
	}
}

func (o *commonOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", o.kubeconfig, "Path to a kubeconfig file. Empty: as kubectl, $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.")
	fs.StringVar(&o.cidrSource, "cidr-source", o.cidrSource, "Where node pod CIDRs come from: nodes (spec.podCIDRs, host-local IPAM), spiderpool (per-node SpiderIPPools), calico (Calico IPAM block affinities), or auto (spec.podCIDRs, with SpiderIPPools checked against them when the CRD exists; Calico's block affinities when they exist and no node has a podCIDR).")
	o.route.AddPolicyFlags(fs)
	o.cloud.AddFlags(fs)
}

// loggingFlagOf names the flag behind a field of the logging
// configuration, for its validation errors.
var loggingFlagOf = map[string]string{"format": "--logging-format", "verbosity": "--v", "vmodule": "--vmodule", "flushFrequency": "--log-flush-frequency"}

// validated is a checked configuration of run or audit.
type validated struct {
	mode ipam.Mode
	cfg  route.Config
}

func (o *commonOptions) validate() (validated, error) {
	mode, err := ipam.ParseMode(o.cidrSource)
	if err != nil {
		return validated{}, fmt.Errorf("--cidr-source: %w", err)
	}
	cfg, err := o.route.Config()
	if err != nil {
		return validated{}, err
	}
	if err := o.cloud.Validate(); err != nil {
		return validated{}, err
	}
	if errs := logsapi.Validate(o.logging, nil, nil); len(errs) > 0 {
		msgs := make([]string, 0, len(errs))
		for _, e := range errs {
			flag, ok := loggingFlagOf[strings.SplitN(e.Field, ".", 2)[0]]
			if !ok {
				flag = "logging flags"
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s", flag, e.ErrorBody()))
		}
		return validated{}, errors.New(strings.Join(msgs, "; "))
	}
	return validated{mode: mode, cfg: cfg}, nil
}

// runOptions are the flags of run.
type runOptions struct {
	commonOptions
	metricsAddr    string
	healthAddr     string
	leaderElect    bool
	leaseDuration  time.Duration
	renewDeadline  time.Duration
	retryPeriod    time.Duration
	leaseName      string
	leaseNamespace string
	once           bool
}

func newRunOptions(getenv func(string) string) *runOptions {
	ns := getenv("POD_NAMESPACE")
	if ns == "" {
		ns = defaultLeaseNamespace
	}
	return &runOptions{
		commonOptions:  newCommonOptions(),
		metricsAddr:    defaultMetricsAddr,
		healthAddr:     defaultHealthAddr,
		leaderElect:    true,
		leaseDuration:  defaultLeaseDuration,
		renewDeadline:  defaultRenewDeadline,
		retryPeriod:    defaultRetryPeriod,
		leaseName:      defaultLeaseName,
		leaseNamespace: ns,
	}
}

func (o *runOptions) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet(name+" run", pflag.ContinueOnError)
	o.addFlags(fs)
	o.route.AddRunFlags(fs)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", o.metricsAddr, "Address serving Prometheus metrics at /metrics.")
	fs.StringVar(&o.healthAddr, "health-bind-address", o.healthAddr, "Address serving /healthz (alive) and /readyz (caches synced and cloud credentials accepted).")
	fs.BoolVar(&o.leaderElect, "leader-elect", o.leaderElect, "Elect a leader with a Lease so that only one replica writes routes; followers keep their caches warm.")
	fs.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", o.leaseDuration, "How long followers wait after the last renewal before taking the lease over.")
	fs.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", o.renewDeadline, "How long the leader keeps retrying to renew the lease before it stops leading.")
	fs.DurationVar(&o.retryPeriod, "leader-elect-retry-period", o.retryPeriod, "How often candidates try to acquire and the leader to renew the lease.")
	fs.StringVar(&o.leaseName, "leader-elect-resource-name", o.leaseName, "Name of the Lease object used for leader election.")
	fs.StringVar(&o.leaseNamespace, "leader-elect-resource-namespace", o.leaseNamespace, "Namespace of the Lease object; the default is $POD_NAMESPACE when set, else kube-system.")
	fs.BoolVar(&o.once, "once", o.once, "Run one full pass and exit: 0 when every route was placed, 1 otherwise (for migrations and CI). Leader election is off unless --leader-elect (or its variable) is given explicitly.")
	return fs
}

// onceDefaults turns leader election off for --once unless the command line
// or its environment variable asks for it: one pass from a job or CI has no
// standby to hand over to.
func (o *runOptions) onceDefaults(fs *pflag.FlagSet) {
	if o.once && !fs.Changed("leader-elect") {
		o.leaderElect = false
	}
}

func (o *runOptions) validate() (validated, error) {
	v, err := o.commonOptions.validate()
	if err != nil {
		return validated{}, err
	}
	for flagName, addr := range map[string]*string{"--metrics-bind-address": &o.metricsAddr, "--health-bind-address": &o.healthAddr} {
		normalized, err := normalizeBindAddress(*addr)
		if err != nil {
			return validated{}, fmt.Errorf("%s: %w", flagName, err)
		}
		*addr = normalized
	}
	if o.metricsAddr == o.healthAddr && !strings.HasSuffix(o.metricsAddr, ":0") {
		return validated{}, fmt.Errorf("--metrics-bind-address and --health-bind-address must differ, both are %q", o.metricsAddr)
	}
	if !o.leaderElect {
		return v, nil
	}
	switch {
	case o.retryPeriod <= 0:
		return validated{}, fmt.Errorf("--leader-elect-retry-period must be positive, not %v", o.retryPeriod)
	case float64(o.renewDeadline) <= leaderelection.JitterFactor*float64(o.retryPeriod):
		return validated{}, fmt.Errorf("--leader-elect-renew-deadline (%v) must be longer than %v times --leader-elect-retry-period (%v)", o.renewDeadline, leaderelection.JitterFactor, o.retryPeriod)
	case o.leaseDuration <= o.renewDeadline:
		return validated{}, fmt.Errorf("--leader-elect-lease-duration (%v) must be longer than --leader-elect-renew-deadline (%v)", o.leaseDuration, o.renewDeadline)
	case o.leaseName == "":
		return validated{}, errors.New("--leader-elect-resource-name must not be empty")
	case o.leaseNamespace == "":
		return validated{}, errors.New("--leader-elect-resource-namespace must not be empty")
	}
	return v, nil
}

// Audit output formats.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// auditOptions are the flags of audit.
type auditOptions struct {
	commonOptions
	output    string
	onlyDrift bool
	timeout   time.Duration
}

// defaultAuditTimeout bounds an audit, so that an unreachable API server or
// cloud fails a cron job instead of hanging it.
const defaultAuditTimeout = time.Minute

func newAuditOptions() *auditOptions {
	return &auditOptions{commonOptions: newCommonOptions(), output: outputTable, timeout: defaultAuditTimeout}
}

func (o *auditOptions) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet(name+" audit", pflag.ContinueOnError)
	o.addFlags(fs)
	fs.StringVar(&o.kubeContext, "context", o.kubeContext, "The kubeconfig context to use, as kubectl's --context. Empty: the current context.")
	fs.StringVarP(&o.output, "output", "o", o.output, "Output format: table, json or yaml (JSON and YAML carry apiVersion "+route.ReportAPIVersion+" and kind "+route.ReportKind+").")
	fs.BoolVar(&o.onlyDrift, "only-drift", o.onlyDrift, "List only the routes that are not in sync; the summary still counts every route.")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "Give up after this long, naming what could not be reached (exit code 2).")
	return fs
}

func (o *auditOptions) validate() (validated, error) {
	switch o.output {
	case outputTable, outputJSON, outputYAML:
	default:
		return validated{}, fmt.Errorf("--output must be table, json or yaml, not %q", o.output)
	}
	if o.timeout <= 0 {
		return validated{}, fmt.Errorf("--timeout must be positive, not %v", o.timeout)
	}
	return o.commonOptions.validate()
}

// loggingFlags are component-base's logging flags (--logging-format text or
// json, -v, --vmodule, ...), the ones every Kubernetes component has. They
// are a set of their own so that --help lists them apart from ours.
func (o *commonOptions) loggingFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("logging", pflag.ContinueOnError)
	logsapi.AddFlags(o.logging, fs)
	return fs
}

// normalizeBindAddress accepts host:port with an optional host and a
// numeric port. An IPv6 host without brackets (fd00::1:10290) is accepted
// too: the manifests build the address from the node's IP
// ($(HOST_IP):10290), which Kubernetes substitutes without brackets.
func normalizeBindAddress(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		i := strings.LastIndex(addr, ":")
		ip, perr := netip.ParseAddr(addr[:max(i, 0)])
		if i < 0 || perr != nil || !ip.Is6() {
			return "", fmt.Errorf("%q is not host:port", addr)
		}
		host, port = ip.String(), addr[i+1:]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q has no valid port", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// parseFlags parses a subcommand's flags, its own (fs) and the logging
// flags, listed apart in --help, then takes the flags the command line left
// unset from their environment variables in environ (see applyEnv). It
// returns done=true with the exit code when the command must stop: after
// --help (0) or on a bad flag or variable (2); else the flags set by the
// environment.
func parseFlags(fs, logging *pflag.FlagSet, args []string, environ []string, cmd string, stdout, stderr io.Writer) (src envSource, code int, done bool) {
	all := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	all.AddFlagSet(fs)
	all.AddFlagSet(logging)
	all.SetOutput(io.Discard)
	err := all.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Fprintf(stdout, "Usage:\n  %s %s [flags]\n\n%s\nFlags:\n%s\nLogging flags:\n%s%s", name, cmd, envHelp,
			withEnvNames(fs).FlagUsages(), withEnvNames(logging).FlagUsages(), exitCodesHelp[cmd])
		return nil, exitOK, true
	case err != nil:
		usageError(stderr, cmd, err)
		return nil, exitUsage, true
	case all.NArg() > 0:
		usageError(stderr, cmd, fmt.Errorf("unexpected argument %q", all.Arg(0)))
		return nil, exitUsage, true
	}
	src, err = applyEnv(all, environ)
	if err != nil {
		usageError(stderr, cmd, err)
		return nil, exitUsage, true
	}
	return src, exitOK, false
}

// envHelp opens each subcommand's --help.
var envHelp = "Every flag can also be set by the environment variable shown after its help, " + envPrefix + "<FLAG_NAME>\n" +
	"with dashes as underscores; a flag on the command line wins over its variable. A variable\n" +
	"that names no flag of run or audit is an error; each subcommand ignores the other's.\n"

// exitCodesHelp ends each subcommand's --help.
var exitCodesHelp = map[string]string{
	"run":   "\nExit codes: 0 stopped cleanly (or --once placed every route), 1 runtime failure (or --once left routes unplaced), 2 bad flags or configuration.\n",
	"audit": "\nExit codes: 0 in sync, 1 drift, 2 error (bad flags or configuration, the cluster or the cloud could not be read within --timeout).\n",
}

// usageError prints a configuration error as one sentence.
func usageError(stderr io.Writer, cmd string, err error) {
	fmt.Fprintf(stderr, "%s %s: %s (see %s %s --help).\n", name, cmd, strings.TrimSuffix(err.Error(), "."), name, cmd)
}
