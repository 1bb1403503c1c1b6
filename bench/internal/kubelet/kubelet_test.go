package kubelet

import (
	"context"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func testFleet() Fleet {
	return Fleet{
		Region:         "cn-chengdu",
		Zone:           "cn-chengdu-a",
		NodeCIDR:       netip.MustParsePrefix("192.168.32.0/19"),
		ClusterCIDR:    netip.MustParsePrefix("10.0.0.0/8"),
		PodMaskBits:    24,
		KubeletVersion: "v1.37.2",
	}
}

func TestMember(t *testing.T) {
	f := testFleet()
	for _, tc := range []struct {
		i                        int
		name, instance, ip, cidr string
	}{
		{0, "cn-chengdu.i-2vcbench000000000000", "i-2vcbench000000000000", "192.168.32.1", "10.0.0.0/24"},
		{255, "cn-chengdu.i-2vcbench000000000255", "i-2vcbench000000000255", "192.168.33.0", "10.0.255.0/24"},
		{4999, "cn-chengdu.i-2vcbench000000004999", "i-2vcbench000000004999", "192.168.51.136", "10.19.135.0/24"},
	} {
		m := f.Member(tc.i)
		if m.Name != tc.name || m.InstanceID != tc.instance || m.InternalIP.String() != tc.ip || m.PodCIDR.String() != tc.cidr {
			t.Errorf("Member(%d) = %+v, want %s %s %s %s", tc.i, m, tc.name, tc.instance, tc.ip, tc.cidr)
		}
		if len(m.InstanceID) != len("i-")+20 {
			t.Errorf("instance ID %q is not shaped like an ECS instance ID", m.InstanceID)
		}
	}
	if got := f.Members(10, 13); len(got) != 3 || got[0].Index != 10 || got[2].Index != 12 {
		t.Errorf("Members(10, 13) = %+v", got)
	}
}

func TestValidate(t *testing.T) {
	f := testFleet()
	if err := f.Validate(8000); err != nil {
		t.Errorf("fleet rejected 8000 nodes: %v", err)
	}
	small := f
	small.NodeCIDR = netip.MustParsePrefix("192.168.0.0/24")
	if err := small.Validate(300); err == nil {
		t.Error("254-address node CIDR accepted 300 nodes")
	}
	narrow := f
	narrow.ClusterCIDR = netip.MustParsePrefix("10.0.0.0/16")
	if err := narrow.Validate(257); err == nil {
		t.Error("/16 cluster CIDR accepted 257 /24 pod CIDRs")
	}
	v6 := f
	v6.ClusterCIDR = netip.MustParsePrefix("fd00::/48")
	if err := v6.Validate(1); err == nil {
		t.Error("IPv6 cluster CIDR accepted")
	}
	if err := (Fleet{}).Validate(1); err == nil {
		t.Error("empty fleet accepted")
	}
}

func TestNodeLooksLikeAKubeletsNode(t *testing.T) {
	f := testFleet()
	m := f.Member(7)
	n := f.Node(m, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if n.Name != m.Name || n.Spec.ProviderID != "cn-chengdu."+m.InstanceID {
		t.Errorf("name %q providerID %q", n.Name, n.Spec.ProviderID)
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) != 0 {
		t.Errorf("pod CIDR set before the IPAM controller assigned it: %v", n.Spec.PodCIDRs)
	}
	if got := len(n.Status.Images); got != 50 {
		t.Errorf("%d images, want the kubelet's maximum of 50", got)
	}
	for i := 1; i < len(n.Status.Images); i++ {
		if n.Status.Images[i].SizeBytes > n.Status.Images[i-1].SizeBytes {
			t.Fatalf("images not sorted largest first at %d", i)
		}
	}
	conds := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, c := range n.Status.Conditions {
		conds[c.Type] = c.Status
	}
	if conds[corev1.NodeReady] != corev1.ConditionTrue || conds[corev1.NodeNetworkUnavailable] != corev1.ConditionTrue {
		t.Errorf("conditions %v, want Ready and NetworkUnavailable True", conds)
	}
	if n.Status.Addresses[0].Address != m.InternalIP.String() || n.Status.NodeInfo.KubeletVersion != "v1.37.2" {
		t.Errorf("status %+v", n.Status.NodeInfo)
	}
	raw, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	// A real worker node's JSON (without managedFields) weighs 10–20 KB.
	if len(raw) < 10_000 || len(raw) > 30_000 {
		t.Errorf("node JSON is %d bytes, not the weight of a real node", len(raw))
	}
}

func networkUnavailable(t *testing.T, n *corev1.Node) corev1.NodeCondition {
	t.Helper()
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			return c
		}
	}
	t.Fatalf("node %s has no NetworkUnavailable condition", n.Name)
	return corev1.NodeCondition{}
}

func TestRegisterAndMarkUnrouted(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	f := testFleet()
	r := Registrar{Client: client, Fleet: f, Concurrency: 4}
	ms := f.Members(0, 25)
	if err := r.Register(ctx, ms); err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != len(ms) {
		t.Fatalf("%d nodes registered, want %d", len(nodes.Items), len(ms))
	}
	for _, m := range ms {
		n, err := client.CoreV1().Nodes().Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.PodCIDR != m.PodCIDR.String() || len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != m.PodCIDR.String() {
			t.Errorf("node %s pod CIDRs %v, want %s", m.Name, n.Spec.PodCIDRs, m.PodCIDR)
		}
		if len(n.Status.Images) != 50 {
			t.Errorf("node %s lost its images to the heartbeat: %d left", m.Name, len(n.Status.Images))
		}
	}

	// A controller clears the condition of one node; MarkUnrouted puts it back.
	n, err := client.CoreV1().Nodes().Get(ctx, ms[3].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeNetworkUnavailable {
			n.Status.Conditions[i].Status = corev1.ConditionFalse
			n.Status.Conditions[i].Reason = "RouteCreated"
		}
	}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.MarkUnrouted(ctx, []string{ms[3].Name}); err != nil {
		t.Fatal(err)
	}
	n, err = client.CoreV1().Nodes().Get(ctx, ms[3].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := networkUnavailable(t, n); c.Status != corev1.ConditionTrue || c.Reason != reasonNoRouteCreated {
		t.Errorf("after MarkUnrouted NetworkUnavailable = %s/%s, want True/%s", c.Status, c.Reason, reasonNoRouteCreated)
	}
	if len(n.Status.Conditions) != 5 {
		t.Errorf("MarkUnrouted replaced the conditions instead of merging: %d left", len(n.Status.Conditions))
	}
}

func TestRegisterReportsFailures(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	f := testFleet()
	r := Registrar{Client: client, Fleet: f, Concurrency: 2}
	if err := r.Register(ctx, f.Members(0, 3)); err != nil {
		t.Fatal(err)
	}
	// Registering the same nodes again fails on every one (AlreadyExists).
	if err := r.Register(ctx, f.Members(0, 3)); err == nil {
		t.Error("registering existing nodes succeeded")
	}
	// Marking nodes that do not exist fails.
	if err := r.MarkUnrouted(ctx, []string{"cn-chengdu.i-missing"}); err == nil {
		t.Error("marking a missing node succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := r.Register(cancelled, f.Members(10, 20)); err == nil {
		t.Error("registering with a cancelled context succeeded")
	}
}
