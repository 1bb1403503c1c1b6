package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/ipam"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// auditSyncTimeout bounds the wait for the informer caches, so that an
// unreachable API server fails the audit instead of hanging a cron job.
const auditSyncTimeout = time.Minute

func auditCommand(ctx context.Context, args []string, stdout, stderr io.Writer, e env) int {
	o := newAuditOptions()
	if code, done := parseFlags(o.flagSet(), args, "audit", stdout, stderr); done {
		return code
	}
	v, err := o.validate()
	if err != nil {
		usageError(stderr, "audit", err)
		return exitUsage
	}
	clients, err := e.clients(o.kubeconfig)
	if err != nil {
		usageError(stderr, "audit", err)
		return exitUsage
	}
	report, err := audit(ctx, o, v, clients, e)
	if err != nil {
		fmt.Fprintf(stderr, "%s audit: %s.\n", name, strings.TrimSuffix(err.Error(), "."))
		return exitUsage
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
	factory.Start(ctx.Done())
	src.Start(ctx)
	syncCtx, syncCancel := context.WithTimeout(ctx, auditSyncTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), nodes.Informer().HasSynced, src.HasSynced) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("the Kubernetes caches did not sync within %v; is the API server reachable and are nodes and the --cidr-source=%s resources readable?", auditSyncTimeout, v.mode)
	}
	o.cloud.AdoptUnmarked = v.cfg.Policy.AdoptUnmarked
	o.cloud.SourceDestCheck = string(v.cfg.SourceDestCheck)
	access, err := e.connect(ctx, o.cloud, v.cfg.Policy.ClusterID, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting to Alibaba Cloud: %w", err)
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
		return nil, fmt.Errorf("auditing: %w", err)
	}
	if report == nil {
		return nil, errors.New("auditing: no report")
	}
	return report, nil
}
