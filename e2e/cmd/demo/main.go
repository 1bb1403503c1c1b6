// Command demo runs vpc-route-publisher against a local etcd and
// kube-apiserver and the alisim simulator, registers a few nodes modelled on
// a cn-chengdu cluster and shows the VPC route table converging, the audit
// and the drift metrics, then repairs an entry deleted out of band. It runs
// until Ctrl-C or DEMO_SECONDS elapse and stops every process it started.
//
// Run it with `make demo`.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

const clusterID = "demo-chengdu"

// demoNode is a node of the demo cluster.
type demoNode struct {
	name, providerID string
	podCIDRs         []string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if v := os.Getenv("DEMO_SECONDS"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs <= 0 {
			return fmt.Errorf("DEMO_SECONDS=%q: want a positive number of seconds", v)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
		defer cancel()
	}

	dir, err := os.MkdirTemp("", "vpc-route-publisher-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	say("Starting etcd, kube-apiserver (RBAC on) and the alisim simulator in %s ...", dir)
	start := time.Now()
	env, err := framework.Setup(ctx, dir)
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping every process ...")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping:", err)
		}
	}()
	say("Control plane %s and simulator %s up in %s; the publisher runs as ServiceAccount %s/%s from deploy/base.",
		env.CP.ServerURL, env.Sim.APIAddr, time.Since(start).Round(time.Millisecond), env.ServiceAccountNamespace, env.ServiceAccountName)

	extra, err := env.Sim.AddInstances(ctx, 2)
	if err != nil {
		return err
	}
	nodes := []demoNode{
		{"cn-chengdu.i-2vcxxr", "cn-chengdu.i-2vcxxr", []string{"10.244.0.0/24"}},
		{"cn-chengdu.i-2vcxxs", "alicloud://cn-chengdu.i-2vcxxs", []string{"10.244.1.0/24"}},
		{"cn-chengdu.i-2vcxxt", "alicloud://cn-chengdu.i-2vcxxt", []string{"10.244.2.0/24", "fd00:10:244:2::/64"}},
	}
	for i, inst := range extra {
		nodes = append(nodes, demoNode{"cn-chengdu." + inst.ID, "alicloud://cn-chengdu." + inst.ID, []string{fmt.Sprintf("10.244.%d.0/24", 3+i)}})
	}
	// A route a person added by hand: the publisher must leave it alone.
	if _, err := env.Sim.PutRoute(ctx, alisim.RouteEntry{
		Destination: netip.MustParsePrefix("172.16.0.0/24"), NextHopType: alisim.NextHopInstance, NextHopID: "i-2vcxxt",
		Name: "office-vpn", Description: "added by hand",
	}); err != nil {
		return err
	}

	pubOpts := framework.PublisherOptions{
		Bin:            filepath.Join(env.Paths.Bin, "vpc-route-publisher"),
		Name:           "vpc-route-publisher",
		Dir:            filepath.Join(dir, "publisher"),
		Kubeconfig:     env.PublisherKubeconfig,
		LeaseNamespace: env.ServiceAccountNamespace,
		ClusterID:      clusterID,
		ClusterCIDRs:   []string{"10.244.0.0/16", "fd00:10:244::/56"},
		ResyncPeriod:   5 * time.Second,
	}
	pub, err := framework.StartPublisher(ctx, env.Sim, pubOpts)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Stop(framework.DefaultStopTimeout) }()
	say("Publisher started (metrics %s, log %s).", pub.MetricsURL, pub.LogPath)

	say("Registering %d nodes ...", len(nodes))
	for _, n := range nodes {
		obj := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.name},
			Spec:       corev1.NodeSpec{ProviderID: n.providerID, PodCIDR: n.podCIDRs[0], PodCIDRs: n.podCIDRs},
		}
		if _, err := env.Kube.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating node %s: %w", n.name, err)
		}
	}

	want := 0
	for _, n := range nodes {
		want += len(n.podCIDRs)
	}
	if err := watch(ctx, env, pub, "Converging", "", func(v view) bool { return v.available == want && v.conditions == len(nodes) }); err != nil {
		return done(err)
	}
	auditText, err := audit(ctx, env, pubOpts)
	if err != nil {
		return done(err)
	}
	fmt.Print(auditText)

	// Let a person look at the converged table before the drift.
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(5 * time.Second):
	}

	// Drift: delete one of our entries behind the publisher's back.
	victim, err := ownEntry(ctx, env, "10.244.1.0/24")
	if err != nil {
		return err
	}
	if err := env.Sim.DeleteRoute(ctx, victim.ID); err != nil {
		return err
	}
	say("Deleted the entry for 10.244.1.0/24 out of band (as a console user might); the next resync repairs it.")
	if err := watch(ctx, env, pub, "Repairing drift", strings.Replace(auditText, "audit ", "audit   (before the drift)", 1), func(v view) bool {
		id := v.ids[victim.Destination.String()]
		return v.available == want && v.missing == 0 && id != "" && id != victim.ID
	}); err != nil {
		return done(err)
	}
	say("Converged again. Watching until Ctrl-C%s ...", map[bool]string{true: " or DEMO_SECONDS", false: ""}[os.Getenv("DEMO_SECONDS") != ""])
	auditText, err = audit(ctx, env, pubOpts)
	if err != nil {
		return done(err)
	}
	fmt.Print(auditText)
	return done(watch(ctx, env, pub, "Watching", auditText, func(view) bool { return false }))
}

// done turns the end of the demo's context (Ctrl-C, DEMO_SECONDS) into a
// clean exit.
func done(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// story keeps what the demo did, shown under every redraw so that a
// terminal that is cleared on refresh still tells what happened.
var story []string

func say(format string, args ...any) {
	line := fmt.Sprintf(time.Now().Format("15:04:05")+" "+format, args...)
	story = append(story, line)
	fmt.Printf("\n==> %s\n", line)
}

// view is one refresh of the screen.
type view struct {
	available, missing, conditions int
	// ids maps each destination to its entry ID, to see an entry replaced.
	ids map[string]string
}

// watch redraws the route table, node conditions and drift metrics once a
// second until until(view) holds or ctx ends.
func watch(ctx context.Context, env *framework.Env, pub *framework.Publisher, title, footer string, until func(view) bool) error {
	tty := isTerminal(os.Stdout)
	var (
		v    view
		last string
	)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		screen, nv, err := render(ctx, env, pub, title)
		if err != nil && ctx.Err() == nil {
			screen = fmt.Sprintf("%s\n(refresh failed: %v)\n", screen, err)
		}
		screen += footer + "\nWhat happened so far:\n  " + strings.Join(story, "\n  ") + "\n"
		v = nv
		// Redraw when something but the clock in the title changed: on a
		// terminal in place, in a log only then.
		if body := screen[strings.Index(screen, "\n")+1:]; body != last || tty {
			if tty {
				fmt.Print("\033[H\033[2J")
			}
			fmt.Print(screen)
			last = body
		}
		if until(v) {
			return nil
		}
		if exited, _ := pub.Exited(); exited {
			return fmt.Errorf("the publisher exited with code %d; its log:\n%s", pub.ExitCode(), pub.LogTail(30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

func render(ctx context.Context, env *framework.Env, pub *framework.Publisher, title string) (string, view, error) {
	var (
		b strings.Builder
		v = view{ids: map[string]string{}}
	)
	fmt.Fprintf(&b, "%s — %s   (route table %s of %s)\n\n", title, time.Now().Format("15:04:05"), env.Sim.TableID, env.Sim.VPCID)
	entries, err := env.Sim.CustomRoutes(ctx, "")
	if err != nil {
		return b.String(), v, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Destination.String() < entries[j].Destination.String() })
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DESTINATION\tNEXT HOP\tSTATUS\tOWNER")
	for _, e := range entries {
		owner := "foreign (" + e.Name + ")"
		if strings.Contains(e.Description, "cluster="+clusterID) {
			owner = "ours (" + e.Name + ")"
		}
		if e.Status == alisim.StatusAvailable && strings.HasPrefix(owner, "ours") {
			v.available++
			v.ids[e.Destination.String()] = e.ID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Destination, e.NextHopID, e.Status, owner)
	}
	_ = tw.Flush()

	nodes, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return b.String(), v, fmt.Errorf("listing nodes: %w", err)
	}
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPOD CIDRS\tNETWORK UNAVAILABLE")
	for _, n := range nodes.Items {
		cond := "(not set)"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable {
				cond = string(c.Status) + " (" + c.Reason + ")"
				if c.Status == corev1.ConditionFalse {
					v.conditions++
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, strings.Join(n.Spec.PodCIDRs, ","), cond)
	}
	_ = tw.Flush()

	m, err := pub.Metrics(ctx)
	if err != nil {
		return b.String(), v, err
	}
	b.WriteString("\nDrift (vpc_route_publisher_route_entries):\n  ")
	for _, state := range []string{"desired", "present", "missing", "unexpected", "conflicting", "pending", "blackhole"} {
		val := m.Get("vpc_route_publisher_route_entries", map[string]string{"state": state})
		if state == "missing" {
			v.missing = int(val)
		}
		fmt.Fprintf(&b, "%s=%g  ", state, val)
	}
	fmt.Fprintf(&b, "\nRoute writes: %s\n", strings.Join(m.Series("vpc_route_publisher_route_writes_total"), "  "))
	fmt.Fprintf(&b, "Leader: %g   cloud API calls: %g   retries: %g   throttles: %g   quota: %g/%g\n",
		m.Get("vpc_route_publisher_leader", nil),
		m.Get("vpc_route_publisher_cloud_api_calls_total", nil),
		m.Get("vpc_route_publisher_cloud_api_retries_total", nil),
		m.Get("vpc_route_publisher_cloud_api_throttles_total", nil),
		m.Get("vpc_route_publisher_route_table_quota_used", nil),
		m.Get("vpc_route_publisher_route_table_quota_limit", nil))
	return b.String(), v, nil
}

// audit runs `vpc-route-publisher audit` and returns its report, headed,
// for display.
func audit(ctx context.Context, env *framework.Env, o framework.PublisherOptions) (string, error) {
	res, err := framework.RunAudit(ctx, env.Sim, o, "table")
	if err != nil {
		return "", err
	}
	verdict := map[int]string{0: "in sync", 1: "drift", 2: "error"}[res.ExitCode]
	out := fmt.Sprintf("\n$ vpc-route-publisher audit   (exit code %d: %s)\n%s", res.ExitCode, verdict, res.Stdout)
	if res.ExitCode > 1 {
		// Only an error needs the log; in sync or drift, stdout says it all.
		out += res.Stderr
	}
	return out, nil
}

func ownEntry(ctx context.Context, env *framework.Env, dst string) (alisim.RouteEntry, error) {
	es, err := env.Sim.CustomRoutes(ctx, "")
	if err != nil {
		return alisim.RouteEntry{}, err
	}
	for _, e := range es {
		if e.Destination.String() == dst {
			return e, nil
		}
	}
	return alisim.RouteEntry{}, fmt.Errorf("no entry for %s", dst)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
