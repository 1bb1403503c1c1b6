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
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/version"
)

// env is what the command takes from its surroundings. main uses the real
// one; tests swap in fake clients and observe the servers.
type env struct {
	// clients builds the Kubernetes clients the way kubectl finds its
	// configuration (see newKubeClients).
	clients func(kubeconfig, context string) (*kubeClients, error)
	// applyLogging puts the logging flags into effect and returns the
	// context carrying the resulting logger. Tests only validate them: the
	// logging configuration is global to the process.
	applyLogging func(ctx context.Context, c *logsapi.LoggingConfiguration) (context.Context, error)
	// connect connects to the cloud; reg receives the cloud metrics.
	connect func(ctx context.Context, opts *cloud.Options, clusterID string, reg prometheus.Registerer) (*cloudAccess, error)
	// listening is told the address each HTTP server listens on.
	listening func(server string, addr net.Addr)
	// connectBackoff paces the retries of a cloud connection refused for
	// a reason that may go away (credentials, network, throttling).
	connectBackoff wait.Backoff
	getenv         func(string) string
	// environ lists the environment (os.Environ), where flags not given on
	// the command line are looked up (see applyEnv).
	environ func() []string
}

// kubeClients are the Kubernetes clients of the command.
type kubeClients struct {
	kube    kubernetes.Interface
	dynamic dynamic.Interface
	// host is the API server's address, for error messages.
	host string
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
		applyLogging: func(ctx context.Context, c *logsapi.LoggingConfiguration) (context.Context, error) {
			if err := logsapi.ValidateAndApply(c, nil); err != nil {
				return ctx, err
			}
			return klog.NewContext(ctx, klog.Background()), nil
		},
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
		environ:        os.Environ,
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

// newKubeClients loads the client configuration as kubectl does:
// --kubeconfig, else the files of $KUBECONFIG, else ~/.kube/config, else
// the in-cluster service account; kubeContext selects a context (empty: the
// current one).
func newKubeClients(kubeconfig, kubeContext string) (*kubeClients, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		switch {
		case kubeconfig != "":
			return nil, fmt.Errorf("loading --kubeconfig %s: %w", kubeconfig, err)
		case clientcmd.IsEmptyConfig(err):
			return nil, fmt.Errorf("no Kubernetes configuration: no --kubeconfig, no $KUBECONFIG, no ~/.kube/config and not in a cluster")
		}
		return nil, fmt.Errorf("loading the Kubernetes configuration: %w", err)
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
	return &kubeClients{kube: kube, dynamic: dyn, election: election, host: cfg.Host}, nil
}
