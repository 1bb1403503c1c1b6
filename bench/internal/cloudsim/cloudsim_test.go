package cloudsim

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/bench/internal/kubelet"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func testFleet() kubelet.Fleet {
	return kubelet.Fleet{
		Region: "cn-chengdu", Zone: "cn-chengdu-a",
		NodeCIDR:    netip.MustParsePrefix("192.168.32.0/19"),
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), PodMaskBits: 24,
	}
}

func credentials(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range map[string]string{"access-key-id": "bench-id", "access-key-secret": "bench-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLatencyModelThroughTheRealClient writes routes with the project's
// cloud client and checks that the simulator applies the model (one write
// keeps the entries Pending for base + n × per entry), answers Available
// afterwards and counts every call.
func TestLatencyModelThroughTheRealClient(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := testFleet()
	const base, perEntry = 150 * time.Millisecond, 10 * time.Millisecond
	c, err := Start(Options{Fleet: f, Instances: 3, Quota: 10, WriteBase: base, WritePerEntry: perEntry,
		ListLatency: 5 * time.Millisecond, AccessKeyID: "bench-id", AccessKeySecret: "bench-secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	o := cloud.NewOptions()
	o.Region, o.VPCID = c.Region, c.VPCID
	o.VPCEndpoint, o.ECSEndpoint, o.STSEndpoint = c.APIAddr, c.APIAddr, c.APIAddr
	o.MetadataEndpoint, o.InsecureHTTP, o.CredentialsDir = c.MetadataURL, true, credentials(t)
	cl, err := cloud.New(ctx, o, "bench", nil)
	if err != nil {
		t.Fatal(err)
	}
	before := c.Calls()
	if before.Get("DescribeVpcs") != 1 || before.Writes() != 0 {
		t.Errorf("calls after connecting: %s", before)
	}

	ms := f.Members(0, 3)
	want := map[netip.Prefix]string{}
	var rs []route.Route
	for _, m := range ms {
		want[m.PodCIDR] = m.InstanceID
		rs = append(rs, route.Route{Table: c.TableID, Destination: m.PodCIDR, NextHop: m.InstanceID, Node: m.Name})
	}
	start := time.Now()
	for _, res := range cl.Table().Create(ctx, rs) {
		if res.Err != nil {
			t.Fatalf("creating %s: %v", res.Route.Destination, res.Err)
		}
	}
	if took, model := time.Since(start), base+3*perEntry; took < model {
		t.Errorf("3 entries Available after %v, faster than the model's %v", took, model)
	}
	avail, err := c.Available(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(avail) != 3 {
		t.Errorf("%d of 3 routes Available", len(avail))
	}
	// A route to another instance does not count.
	wrong := map[netip.Prefix]string{ms[0].PodCIDR: ms[1].InstanceID}
	if avail, _ := c.Available(wrong); avail[ms[0].PodCIDR] {
		t.Error("a route to the wrong instance counted as Available")
	}
	if n, err := c.CustomEntries(); err != nil || n != 3 {
		t.Errorf("CustomEntries = %d, %v; want 3", n, err)
	}
	calls := c.Calls().Sub(before)
	if calls.Writes() != 1 || calls.Get("CreateRouteEntries") != 1 || calls.Get("DescribeRouteEntryList") < 1 {
		t.Errorf("calls of one batched create: %s", calls)
	}
	if len(c.Errors()) != 0 {
		t.Errorf("errors: %v", c.Errors())
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	f := testFleet()
	for name, o := range map[string]Options{
		"too many instances": {Fleet: func() kubelet.Fleet { g := f; g.NodeCIDR = netip.MustParsePrefix("192.168.32.0/30"); return g }(), Instances: 5, WriteBase: time.Second},
		"no write latency":   {Fleet: f, Instances: 1},
		"other region":       {Fleet: func() kubelet.Fleet { g := f; g.Region = "cn-hangzhou"; return g }(), Instances: 1, WriteBase: time.Second},
	} {
		if c, err := Start(o); err == nil {
			_ = c.Stop(context.Background())
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestCalls(t *testing.T) {
	a := Calls{"CreateRouteEntries": 3, "DescribeRouteEntryList": 10, "DeleteRouteEntries": 1}
	b := Calls{"CreateRouteEntries": 1, "DescribeRouteEntryList": 10}
	d := a.Sub(b)
	if d.String() != "CreateRouteEntries:2,DeleteRouteEntries:1" || d.Writes() != 3 {
		t.Errorf("Sub = %s (writes %d)", d, d.Writes())
	}
	if (Calls{}).String() != "none" {
		t.Error("empty calls not rendered as none")
	}
}
