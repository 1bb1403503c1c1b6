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
	"sync/atomic"
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

	// An interrupt (Ctrl-C, a hang-up, SIGTERM) stops every child process
	// and removes the directory before the binary exits; during set-up it
	// cancels the set-up, which cleans up. Should the binary die otherwise
	// (go test's timeout panic, SIGKILL), the kernel kills the children.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready atomic.Pointer[framework.Env]
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	keepOnSignal := keep
	go func() {
		sig, ok := <-signals
		if !ok {
			return
		}
		cancel()
		if ready.Load() != nil {
			fmt.Fprintf(os.Stderr, "%v: stopping every process of the e2e run\n", sig)
			_ = framework.StopAll(framework.DefaultStopTimeout)
			if !keepOnSignal {
				_ = os.RemoveAll(dir)
			}
			os.Exit(130)
		}
	}()

	setupCtx, setupCancel := context.WithTimeout(ctx, 5*time.Minute)
	start := time.Now()
	env, err = framework.Setup(setupCtx, dir)
	setupCancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "setting up the e2e environment:", err)
		return 1
	}
	ready.Store(env)
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
