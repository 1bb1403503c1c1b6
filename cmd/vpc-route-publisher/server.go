package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// readiness answers /readyz: every check must pass. Checks are named so
// that a failing probe says which one failed.
type readiness struct {
	mu     sync.Mutex
	names  []string
	checks map[string]func() error
}

func newReadiness() *readiness { return &readiness{checks: map[string]func() error{}} }

// add registers a check; a check added later under the same name replaces
// the earlier one.
func (r *readiness) add(name string, check func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.checks[name]; !ok {
		r.names = append(r.names, name)
	}
	r.checks[name] = check
}

// check runs every check and renders their outcome, one line each.
func (r *readiness) check() (string, bool) {
	r.mu.Lock()
	names := append([]string(nil), r.names...)
	checks := make([]func() error, len(names))
	for i, n := range names {
		checks[i] = r.checks[n]
	}
	r.mu.Unlock()
	var b strings.Builder
	ok := true
	for i, n := range names {
		if err := checks[i](); err != nil {
			ok = false
			fmt.Fprintf(&b, "[-]%s failed: %v\n", n, err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", n)
		}
	}
	return b.String(), ok
}

func healthMux(ready *readiness) *http.ServeMux {
	mux := http.NewServeMux()
	// /healthz only says the process serves requests: restarting it would
	// not fix a cloud or API server outage, and followers must stay alive.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		body, ok := ready.check()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte(body))
	})
	return mux
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.NewBuildInfo(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering runtime metrics: %w", err)
		}
	}
	return reg, nil
}

func metricsMux(g prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

// httpServer is one listening HTTP server.
type httpServer struct {
	name string
	srv  *http.Server
	done chan struct{}
}

// serve listens on addr and serves h until shutdown. Listening happens
// before it returns, so a bad or busy address fails the command at once.
func serve(ctx context.Context, serverName, addr string, h http.Handler, listening func(string, net.Addr)) (*httpServer, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for %s on %s: %w", serverName, addr, err)
	}
	logger := klog.FromContext(ctx)
	s := &httpServer{
		name: serverName,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		},
		done: make(chan struct{}),
	}
	logger.Info("Serving", "server", serverName, "address", ln.Addr().String())
	listening(serverName, ln.Addr())
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "HTTP server stopped", "server", serverName)
		}
	}()
	return s, nil
}

// shutdown stops the server, letting requests in flight finish briefly.
func (s *httpServer) shutdown(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Shutting down the HTTP server", "server", s.name)
		_ = s.srv.Close()
	}
	<-s.done
}
