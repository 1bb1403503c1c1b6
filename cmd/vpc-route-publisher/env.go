package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// env is what the command takes from its surroundings. main uses the real
// one; tests swap in fake clients and observe the servers.
type env struct {
	// clients builds the Kubernetes clients from --kubeconfig (empty:
	// in-cluster).
	clients func(kubeconfig string) (*kubeClients, error)
	// connect connects to the cloud; reg receives the cloud metrics.
	connect func(ctx context.Context, opts *cloud.Options, clusterID string, reg prometheus.Registerer) (*cloudAccess, error)
	// listening is told the address each HTTP server listens on.
	listening func(server string, addr net.Addr)
	// connectBackoff paces the retries of a cloud connection refused for
	// a reason that may go away (credentials, network, throttling).
	connectBackoff wait.Backoff
	getenv         func(string) string
}

// kubeClients are the Kubernetes clients of the command.
type kubeClients struct {
	kube    kubernetes.Interface
	dynamic dynamic.Interface
	// election renews the leader lease; a client of its own, so that the
	// controller's requests never delay a renewal in the rate limiter.
	election kubernetes.Interface
}

// cloudAccess is the cloud side the controller needs.
type cloudAccess struct {
	table     route.Table
	instances route.Instances
	enis      route.ENIs
	// permissions proves the RAM permissions; nil in tests without a cloud.
	permissions permissionProber
}

// permissionProber proves the RAM permissions the publisher needs
// (cloud.Permissions).
type permissionProber interface {
	// Run probes periodically until ctx ends.
	Run(ctx context.Context, interval time.Duration)
	// Check is nil once every needed action is proven granted, else it
	// names what to grant.
	Check() error
}

func defaultEnv() env {
	return env{
		clients: newKubeClients,
		connect: func(ctx context.Context, opts *cloud.Options, clusterID string, reg prometheus.Registerer) (*cloudAccess, error) {
			c, err := cloud.New(ctx, opts, clusterID, reg)
			if err != nil {
				return nil, err
			}
			return &cloudAccess{table: c.Table(), instances: c.Instances(), enis: c.ENIs(), permissions: c.Permissions()}, nil
		},
		listening:      func(string, net.Addr) {},
		connectBackoff: wait.Backoff{Duration: 2 * time.Second, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 2 * time.Minute},
		getenv:         os.Getenv,
	}
}

// Client-side rate limits of the Kubernetes clients. The heaviest traffic is
// one condition patch and one event per node when many nodes join at once:
// at 20 QPS, 1000 joining nodes waited 48 s for their conditions after their
// routes were Available (make bench); the API server's own priority and
// fairness still protects it from this one client.
const (
	kubeQPS   = 100
	kubeBurst = 200
)

func newKubeClients(kubeconfig string) (*kubeClients, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		if kubeconfig == "" {
			return nil, fmt.Errorf("no --kubeconfig given and no in-cluster configuration: %w", err)
		}
		return nil, fmt.Errorf("loading --kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = kubeQPS, kubeBurst
	cfg.UserAgent = name + "/" + version.Get()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the dynamic client: %w", err)
	}
	election, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election"))
	if err != nil {
		return nil, fmt.Errorf("creating the leader election client: %w", err)
	}
	return &kubeClients{kube: kube, dynamic: dyn, election: election}, nil
}
