package tracker

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
)

// fakeRoutes is a cloud whose Available routes the test sets.
type fakeRoutes struct {
	mu    sync.Mutex
	avail map[netip.Prefix]string
	err   error
}

func (f *fakeRoutes) set(p netip.Prefix, hop string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.avail[p] = hop
}

func (f *fakeRoutes) Available(want map[netip.Prefix]string) (map[netip.Prefix]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[netip.Prefix]bool{}
	for p, hop := range want {
		if f.avail[p] == hop {
			out[p] = true
		}
	}
	return out, nil
}

func node(name string, status corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
			{Type: corev1.NodeNetworkUnavailable, Status: status},
		}},
	}
}

func members() []kubelet.Member {
	return []kubelet.Member{
		{Name: "a", InstanceID: "i-a", PodCIDR: netip.MustParsePrefix("10.0.0.0/24")},
		{Name: "b", InstanceID: "i-b", PodCIDR: netip.MustParsePrefix("10.0.1.0/24")},
	}
}

func TestFleetConvergesWhenRoutesAndConditionsAreDone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset(node("a", corev1.ConditionTrue), node("b", corev1.ConditionTrue))
	conds, err := StartConditions(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	routes := &fakeRoutes{avail: map[netip.Prefix]string{}}
	w := Watch{Routes: routes, Conditions: conds, Poll: 5 * time.Millisecond}
	if err := w.Unrouted(ctx, []string{"a", "b"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	// Both routes appear, one on the wrong instance first; one node clears
	// its condition. Not converged yet.
	ms := members()
	routes.set(ms[0].PodCIDR, ms[0].InstanceID)
	routes.set(ms[1].PodCIDR, "i-wrong")
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node("a", corev1.ConditionFalse), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := w.Fleet(ctx, ms, start, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if out.Converged || out.Routes != 1 || out.Total != 2 || out.Elapsed < 200*time.Millisecond {
		t.Fatalf("half-done fleet: %+v", out)
	}

	routes.set(ms[1].PodCIDR, ms[1].InstanceID)
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node("b", corev1.ConditionFalse), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = w.Fleet(ctx, ms, start, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Converged || out.Routes != 2 || out.Nodes != 2 || out.Elapsed != max(out.RoutesDone, out.NodesDone) {
		t.Fatalf("done fleet: %+v", out)
	}
	if n := len(out.Progress); n == 0 || out.Progress[n-1].Routes != 2 || out.Progress[n-1].At != out.RoutesDone {
		t.Errorf("progress %+v does not end with both routes at %v", out.Progress, out.RoutesDone)
	}
	if at, ok := conds.ClearedAt("b"); !ok || at.Before(start) {
		t.Errorf("ClearedAt(b) = %v, %v", at, ok)
	}

	// A node set back to True is unrouted again and loses its clearing time.
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node("a", corev1.ConditionTrue), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Unrouted(ctx, []string{"a"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := conds.ClearedAt("a"); ok {
		t.Error("node a still counted as cleared after its condition went back to True")
	}
	// A deleted node is forgotten.
	if err := client.CoreV1().Nodes().Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return !conds.Unrouted("a"), nil
	}); err != nil {
		t.Fatalf("a deleted node still reads as unrouted: %v", err)
	}
	if err := w.Unrouted(ctx, []string{"a"}, 50*time.Millisecond); err == nil {
		t.Error("waiting for a deleted node to be unrouted succeeded")
	}
}

func TestFleetStopsOnDeadControllerAndCloudError(t *testing.T) {
	ctx := context.Background()
	conds, err := StartConditions(ctx, fake.NewClientset())
	if err != nil {
		t.Fatal(err)
	}
	died := errors.New("controller exited")
	w := Watch{Routes: &fakeRoutes{avail: map[netip.Prefix]string{}}, Conditions: conds, Poll: 5 * time.Millisecond,
		Alive: func() error { return died }}
	if _, err := w.Fleet(ctx, members(), time.Now(), time.Minute); !errors.Is(err, died) {
		t.Errorf("Fleet with a dead controller: %v, want %v", err, died)
	}
	if _, err := w.Route(ctx, members()[0], time.Now(), time.Minute); !errors.Is(err, died) {
		t.Errorf("Route with a dead controller: %v, want %v", err, died)
	}
	broken := errors.New("simulator gone")
	w = Watch{Routes: &fakeRoutes{err: broken}, Conditions: conds, Poll: 5 * time.Millisecond}
	if _, err := w.Fleet(ctx, members(), time.Now(), time.Minute); !errors.Is(err, broken) {
		t.Errorf("Fleet with a broken cloud: %v, want %v", err, broken)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	w = Watch{Routes: &fakeRoutes{avail: map[netip.Prefix]string{}}, Conditions: conds, Poll: 5 * time.Millisecond}
	if _, err := w.Fleet(cancelled, members(), time.Now(), time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("Fleet with a cancelled context: %v", err)
	}
}

func TestRouteMeasuresFromStart(t *testing.T) {
	ctx := context.Background()
	conds, err := StartConditions(ctx, fake.NewClientset())
	if err != nil {
		t.Fatal(err)
	}
	routes := &fakeRoutes{avail: map[netip.Prefix]string{}}
	w := Watch{Routes: routes, Conditions: conds, Poll: 5 * time.Millisecond}
	m := members()[1]
	start := time.Now()
	if _, err := w.Route(ctx, m, start, 50*time.Millisecond); err == nil {
		t.Fatal("Route of a missing route succeeded")
	}
	routes.set(m.PodCIDR, m.InstanceID)
	d, err := w.Route(ctx, m, start, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d < 50*time.Millisecond {
		t.Errorf("latency %v measured from the wrong start", d)
	}
}
