package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/cloudsim"
	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
)

func testFleet() kubelet.Fleet {
	return kubelet.Fleet{
		Region: "cn-chengdu", Zone: "cn-chengdu-a",
		NodeCIDR:    netip.MustParsePrefix("192.168.32.0/19"),
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), PodMaskBits: 24, KubeletVersion: "v1.37.2",
	}
}

func cloudOptions(t *testing.T, c *cloudsim.Cloud) *cloud.Options {
	t.Helper()
	dir := t.TempDir()
	for name, v := range map[string]string{"access-key-id": "bench-id", "access-key-secret": "bench-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := cloud.NewOptions()
	o.Region, o.VPCID = c.Region, c.VPCID
	o.VPCEndpoint, o.ECSEndpoint, o.STSEndpoint = c.APIAddr, c.APIAddr, c.APIAddr
	o.MetadataEndpoint, o.InsecureHTTP, o.CredentialsDir = c.MetadataURL, true, dir
	return o
}

// TestUpstreamControllerPublishesThroughTheAdapter runs the upstream route
// controller on a fake cluster of kubelet-like nodes and the simulator, and
// checks the end state: every route Available, every node's
// NetworkUnavailable cleared by the controller.
func TestUpstreamControllerPublishesThroughTheAdapter(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := testFleet()
	sim, err := cloudsim.Start(cloudsim.Options{Fleet: f, Instances: 4, Quota: 10,
		WriteBase: 20 * time.Millisecond, WritePerEntry: time.Millisecond,
		AccessKeyID: "bench-id", AccessKeySecret: "bench-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Stop(context.Background()) })

	client := fake.NewClientset()
	reg := kubelet.Registrar{Client: client, Fleet: f, Concurrency: 2}
	ms := f.Members(0, 4)
	if err := reg.Register(ctx, ms); err != nil {
		t.Fatal(err)
	}
	ctrl, err := start(ctx, Options{Cloud: cloudOptions(t, sim), ClusterID: "bench",
		ClusterCIDRs: []netip.Prefix{f.ClusterCIDR}, ReconcilePeriod: 500 * time.Millisecond}, client, &atomic.Bool{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ctrl.Stop(30 * time.Second); err != nil {
			t.Error(err)
		}
	})

	want := map[netip.Prefix]string{}
	for _, m := range ms {
		want[m.PodCIDR] = m.InstanceID
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		avail, err := sim.Available(want)
		if err != nil || len(avail) != len(want) {
			return false, err
		}
		for _, m := range ms {
			n, err := client.CoreV1().Nodes().Get(ctx, m.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeNetworkUnavailable && c.Status != corev1.ConditionFalse {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("upstream controller did not publish every route and clear every condition: %v (calls %s, errors %v)", err, sim.Calls(), sim.Errors())
	}
	if w := sim.Calls().Writes(); w < len(ms) {
		t.Errorf("%d writes for %d routes: the upstream controller writes one route per call", w, len(ms))
	}
}

func TestStartRejectsNoClusterCIDR(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	if _, err := start(ctx, Options{Cloud: cloud.NewOptions(), ClusterID: "bench"}, fake.NewClientset(), &atomic.Bool{}); err == nil {
		t.Error("start without cluster CIDRs succeeded")
	}
}

// TestGateShutsTheControllersClient checks that once a run is stopped its
// client can no longer reach the API server.
func TestGateShutsTheControllersClient(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}})
	}))
	defer srv.Close()
	closed := &atomic.Bool{}
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return gate{next: rt, closed: closed} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("open gate: %v", err)
	}
	closed.Store(true)
	if _, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("closed gate let a request through")
	}
	if hits.Load() != 1 {
		t.Errorf("API server saw %d requests, want 1", hits.Load())
	}
}
