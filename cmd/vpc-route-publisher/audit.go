package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/ipam"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// causeOf adds the reason of ctx's end (the audit's --timeout) to an
// error that does not say it already, so that a timed-out call names both
// what it waited for and why it stopped.
func causeOf(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(err, cause) || strings.Contains(err.Error(), cause.Error()) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, cause)
}

// oneLine folds a multi-line error into one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer, e env) int {
	o := newAuditOptions()
	src, code, done := parseFlags(o.flagSet(), o.loggingFlags(), args, e.environ(), "audit", stdout, stderr)
	if done {
		return code
	}
	v, err := o.validate()
	if err != nil {
		usageError(stderr, "audit", src.explain(err))
		return exitUsage
	}
	if ctx, err = e.applyLogging(ctx, o.logging); err != nil {
		usageError(stderr, "audit", src.explain(err))
		return exitUsage
	}
	clients, err := e.clients(o.kubeconfig, o.kubeContext)
	if err != nil {
		usageError(stderr, "audit", src.explain(err))
		return exitUsage
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("the audit did not finish within --timeout=%v", o.timeout))
	defer cancel()
	report, err := audit(ctx, o, v, clients, e)
	if err != nil {
		fmt.Fprintf(stderr, "%s audit: %s.\n", name, strings.TrimSuffix(oneLine(err), "."))
		return exitUsage
	}
	if o.onlyDrift {
		report = report.OnlyDrift()
	}
	switch o.output {
	case outputJSON:
		err = report.WriteJSON(stdout)
	case outputYAML:
		err = report.WriteYAML(stdout)
	default:
		err = report.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s audit: writing the report: %v.\n", name, err)
		return exitUsage
	}
	klog.FromContext(ctx).V(1).Info("Audit done", "summary", report.Summary())
	if !report.InSync() {
		return exitFailure
	}
	return exitOK
}

// audit reads the same sources and tables as run and reports what a pass
// would do. It takes no lease and writes nothing.
func audit(ctx context.Context, o *auditOptions, v validated, c *kubeClients, e env) (*route.Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	srcOpts, err := sourceOptions(ctx, v, c.kube.Discovery())
	if err != nil {
		cancel()
		return nil, err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithTransform(trimCached))
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	nodes := factory.Core().V1().Nodes()
	src, err := ipam.New(v.mode, nodes, c.dynamic, srcOpts, nil)
	if err != nil {
		return nil, fmt.Errorf("--cidr-source=%s: %w", v.mode, err)
	}
	// One read first, so that an unreachable or refusing API server fails
	// with its own error rather than with caches that never sync.
	if _, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, fmt.Errorf("reading nodes from the API server %s: %w", c.host, causeOf(ctx, err))
	}
	factory.Start(ctx.Done())
	src.Start(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced, src.HasSynced) {
		return nil, fmt.Errorf("the Kubernetes caches did not sync (are nodes and the --cidr-source=%s resources readable?): %w", v.mode, context.Cause(ctx))
	}
	o.cloud.AdoptUnmarked = v.cfg.Policy.AdoptUnmarked
	o.cloud.SourceDestCheck = string(v.cfg.SourceDestCheck)
	access, err := e.connect(ctx, o.cloud, v.cfg.Policy.ClusterID, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting to Alibaba Cloud: %w", causeOf(ctx, err))
	}
	ctl, err := route.New(v.cfg, route.Deps{
		Kube:      c.kube,
		Nodes:     nodes,
		Source:    src,
		Table:     access.table,
		Instances: access.instances,
		ENIs:      access.enis,
		Synced:    []cache.InformerSynced{src.HasSynced},
	})
	if err != nil {
		return nil, err
	}
	report, err := ctl.Audit(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditing: %w", causeOf(ctx, err))
	}
	if report == nil {
		return nil, errors.New("auditing: no report")
	}
	return report, nil
}
