// Command vpc-route-publisher publishes every node's pod CIDR as a custom
// route entry in the Alibaba Cloud VPC route tables of the cluster.
//
//	vpc-route-publisher run      reconcile continuously (leader-elected)
//	vpc-route-publisher audit    print the drift once, never write (exit 0 in sync, 1 drift, 2 error)
//	vpc-route-publisher version  print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

const name = "vpc-route-publisher"

// Exit codes.
const (
	exitOK = 0
	// exitFailure: run failed at runtime; audit found drift.
	exitFailure = 1
	// exitUsage: bad flags or configuration; audit could not complete.
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	// The first signal starts a graceful shutdown; restoring the default
	// handling then lets a second one end the process at once.
	context.AfterFunc(ctx, stop)
	ctx = klog.NewContext(ctx, klog.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, defaultEnv())
	stop()
	klog.Flush()
	os.Exit(code)
}

// run is the whole command: it dispatches to a subcommand and returns the
// process exit code. ctx is cancelled on SIGTERM/SIGINT.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, e env) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: a subcommand is required: run, audit or version (see %s --help).\n", name, name)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr, e)
	case "audit":
		return auditCommand(ctx, args[1:], stdout, stderr, e)
	case "version":
		if len(args) > 1 && (args[1] == "-h" || args[1] == "--help") {
			fmt.Fprintf(stdout, "Usage:\n  %s version\n\nPrints the version of the build.\n", name)
			return exitOK
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "%s version: unexpected argument %q.\n", name, args[1])
			return exitUsage
		}
		fmt.Fprintln(stdout, version.String(name))
		return exitOK
	case "-h", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "%s: unknown subcommand %q: use run, audit or version (see %s --help).\n", name, args[0], name)
		return exitUsage
	}
}

const topUsage = `vpc-route-publisher publishes every node's pod CIDR as a custom route entry
in the Alibaba Cloud VPC route tables of the cluster.

Usage:
  vpc-route-publisher run [flags]      reconcile the route tables continuously (leader-elected)
  vpc-route-publisher audit [flags]    report drift once without writing; exit 0 in sync, 1 on drift, 2 on error
  vpc-route-publisher version          print the version

Run "vpc-route-publisher <subcommand> --help" for the flags of a subcommand.
`
