//go:build e2e

// Package e2e is the end-to-end suite: a real etcd and kube-apiserver (built
// by hack/tools), the alisim simulator and the built publisher binaries, the
// publisher running as the ServiceAccount and RBAC shipped in deploy/base.
// Run it with `make e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// env is shared by every test of the suite: starting a control plane costs
// seconds, so the tests share one and isolate themselves by resetting the
// simulator and deleting their Kubernetes objects (see newScenario).
var env *framework.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vpc-route-publisher-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating the e2e directory:", err)
		return 1
	}
	keep := os.Getenv("E2E_KEEP_DIR") != ""
	defer func() {
		if !keep {
			_ = os.RemoveAll(dir)
		}
	}()

	// An interrupt (Ctrl-C, or go test's own timeout handling) still stops
	// every child process before the binary exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	setupCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	start := time.Now()
	env, err = framework.Setup(setupCtx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up the e2e environment:", err)
		return 1
	}
	fmt.Printf("e2e environment up in %s (control plane %s, alisim %s, dir %s)\n",
		time.Since(start).Round(time.Millisecond), env.CP.ServerURL, env.Sim.APIAddr, dir)
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the e2e environment:", err)
		}
	}()
	code := m.Run()
	if code != 0 {
		keep = keep || os.Getenv("CI") == ""
		for _, p := range env.Processes() {
			fmt.Printf("--- last lines of %s (%s) ---\n%s\n", p.Name, p.LogPath, p.LogTail(30))
		}
		if keep {
			fmt.Println("logs kept in", dir)
		}
	}
	return code
}
