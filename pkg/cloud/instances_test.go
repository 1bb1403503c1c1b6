package cloud

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	cloudprovider "k8s.io/cloud-provider"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func TestInstanceID(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	in := c.Instances()

	id, err := in.InstanceID(c.ctx, route.NodeRef{Name: "n1", ProviderID: "alicloud://cn-chengdu.i-2vcxxs"})
	if err != nil || id != "i-2vcxxs" {
		t.Errorf("by providerID: %q, %v", id, err)
	}

	ts.Sim.ResetCounters()
	ref := route.NodeRef{Name: "n2", InternalIPs: []netip.Addr{netip.MustParseAddr("192.168.0.12"), netip.MustParseAddr("2408:4005:3a0:1000::12")}}
	for range 2 {
		id, err = in.InstanceID(c.ctx, ref)
		if err != nil || id != "i-2vcxxt" {
			t.Fatalf("by InternalIP: %q, %v", id, err)
		}
	}
	if n := ts.Sim.Counters()["DescribeInstances"]["Success"]; n != 1 {
		t.Errorf("DescribeInstances calls = %d, want 1 (the lookup is cached)", n)
	}

	for name, ref := range map[string]route.NodeRef{
		"unknown IP":           {Name: "n3", InternalIPs: []netip.Addr{netip.MustParseAddr("192.168.0.99")}},
		"no address":           {Name: "n4", ProviderID: "kind://docker/n4"},
		"IPv6 only":            {Name: "n5", InternalIPs: []netip.Addr{netip.MustParseAddr("2408:4005:3a0:1000::99")}},
		"malformed providerID": {Name: "n6", ProviderID: "cn-chengdu."},
	} {
		if _, err := in.InstanceID(c.ctx, ref); !errors.Is(err, route.ErrNoInstance) {
			t.Errorf("%s: err = %v, want ErrNoInstance", name, err)
		}
	}
}

// TestInstanceLookupForgetsReleasedInstances: once Status finds an instance
// released, the InternalIP lookup that found it is dropped at once (its IP
// may already belong to a new instance), not after the lookup TTL.
func TestInstanceLookupForgetsReleasedInstances(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	// No grace, permissions proven: released on the first miss.
	c := newTestCloud(t, ts, func(o *Options) { o.InstanceReleaseGrace = 0 }, testTuning(nil, nil))
	c.Permissions().Probe(c.ctx)
	in := c.Instances()
	ref := route.NodeRef{Name: "n2", InternalIPs: []netip.Addr{netip.MustParseAddr("192.168.0.12")}}
	if id, err := in.InstanceID(c.ctx, ref); err != nil || id != "i-2vcxxt" {
		t.Fatalf("by InternalIP: %q, %v", id, err)
	}
	if err := ts.Sim.ReleaseInstance("i-2vcxxt"); err != nil {
		t.Fatal(err)
	}
	if st, err := in.Status(c.ctx, []string{"i-2vcxxt"}); err != nil || len(st) != 0 {
		t.Fatalf("status of the released instance: %v, %v", st, err)
	}
	if id, err := in.InstanceID(c.ctx, ref); !errors.Is(err, route.ErrNoInstance) {
		t.Errorf("lookup after the release = %q, %v; want ErrNoInstance, not the released instance", id, err)
	}
}

func TestInstanceStatusBatchesOf100(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if _, err := ts.Sim.AddVSwitch(alisim.VSwitch{ID: "vsw-big", VPCID: alisim.DefaultVPCID, Zone: alisim.DefaultZone, CIDR: mustPrefix("192.168.16.0/20")}); err != nil {
		t.Fatal(err)
	}
	added, err := ts.Sim.AddInstances(150, "vsw-big")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Sim.SetInstanceStatus(added[7].ID, alisim.InstanceStopped); err != nil {
		t.Fatal(err)
	}
	if err := ts.Sim.ReleaseInstance(added[8].ID); err != nil {
		t.Fatal(err)
	}
	// No grace: released as soon as the permissions are proven.
	c := newTestCloud(t, ts, func(o *Options) { o.InstanceReleaseGrace = 0 }, testTuning(nil, nil))
	c.Permissions().Probe(c.ctx)
	ids := []string{"i-2vcxxr", "i-2vcxxr", "havip-1", ""}
	for _, inst := range added {
		ids = append(ids, inst.ID)
	}
	ts.Sim.ResetCounters()
	status, err := c.Instances().Status(c.ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if n := ts.Sim.Counters()["DescribeInstances"]["Success"]; n != 2 {
		t.Errorf("DescribeInstances calls = %d, want 2 for 151 distinct IDs", n)
	}
	if len(status) != 150 {
		t.Errorf("%d statuses, want 150 (one instance released)", len(status))
	}
	if status[added[7].ID] != route.InstanceStopped || status["i-2vcxxr"] != route.InstanceRunning {
		t.Errorf("statuses: %s=%q i-2vcxxr=%q", added[7].ID, status[added[7].ID], status["i-2vcxxr"])
	}
	if _, ok := status[added[8].ID]; ok {
		t.Errorf("released instance %s reported", added[8].ID)
	}
}

func TestRoutesAdapterRoundTrip(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	custom, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID})
	if err != nil {
		t.Fatal(err)
	}
	// A foreign entry in the cluster CIDR is not listed as ours.
	if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: mustPrefix("10.0.9.0/24"), NextHopID: "i-2vcxxt"}); err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	var a cloudprovider.Routes = c.RoutesAdapter(nil)

	list := func() []*cloudprovider.Route {
		t.Helper()
		rs, err := a.ListRoutes(c.ctx, "kubernetes")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	if rs := list(); len(rs) != 0 {
		t.Fatalf("initial ListRoutes = %v, want none", rs)
	}

	// Node name in the Alibaba form: the instance comes from the name.
	r1 := &cloudprovider.Route{TargetNode: "cn-chengdu.i-2vcxxr", DestinationCIDR: "10.0.1.0/24"}
	if err := a.CreateRoute(c.ctx, "kubernetes", "uid-1", r1); err != nil {
		t.Fatal(err)
	}
	// Another node name: the instance comes from the InternalIP.
	r2 := &cloudprovider.Route{TargetNode: "worker-2", DestinationCIDR: "10.0.2.0/24",
		TargetNodeAddresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.0.11"}}}
	if err := a.CreateRoute(c.ctx, "kubernetes", "uid-2", r2); err != nil {
		t.Fatal(err)
	}
	// Creating again is idempotent.
	if err := a.CreateRoute(c.ctx, "kubernetes", "uid-1", r1); err != nil {
		t.Fatal(err)
	}
	for _, tb := range []string{alisim.DefaultTableID, custom.ID} {
		entries := simRoutes(t, ts, tb)
		if e := entries[mustPrefix("10.0.1.0/24")]; e.NextHopID != "i-2vcxxr" || e.Status != alisim.StatusAvailable {
			t.Errorf("table %s 10.0.1.0/24: %+v", tb, e)
		}
		if e := entries[mustPrefix("10.0.2.0/24")]; e.NextHopID != "i-2vcxxs" {
			t.Errorf("table %s 10.0.2.0/24: %+v", tb, e)
		}
	}
	got := map[string]string{}
	for _, r := range list() {
		got[r.DestinationCIDR] = string(r.TargetNode)
	}
	if len(got) != 2 || got["10.0.1.0/24"] != "cn-chengdu.i-2vcxxr" || got["10.0.2.0/24"] != "worker-2" {
		t.Fatalf("ListRoutes = %v", got)
	}

	// Missing from one table: not listed, so the route controller re-creates it.
	for _, e := range simRoutes(t, ts, custom.ID) {
		if e.Destination == mustPrefix("10.0.2.0/24") {
			if err := ts.Sim.DeleteRoute(e.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rs := list(); len(rs) != 1 {
		t.Errorf("ListRoutes with a partially present route = %d routes, want 1", len(rs))
	}
	if err := a.CreateRoute(c.ctx, "kubernetes", "uid-2", r2); err != nil {
		t.Fatal(err)
	}
	if rs := list(); len(rs) != 2 {
		t.Errorf("ListRoutes after re-creating = %d routes, want 2", len(rs))
	}

	for _, r := range list() {
		if err := a.DeleteRoute(c.ctx, "kubernetes", r); err != nil {
			t.Fatal(err)
		}
	}
	if rs := list(); len(rs) != 0 {
		t.Errorf("ListRoutes after deleting = %v", rs)
	}
	if e, ok := simRoutes(t, ts, alisim.DefaultTableID)[mustPrefix("10.0.9.0/24")]; !ok || e.NextHopID != "i-2vcxxt" {
		t.Errorf("the foreign entry was touched")
	}
	// Deleting what is gone succeeds.
	if err := a.DeleteRoute(c.ctx, "kubernetes", r1); err != nil {
		t.Errorf("deleting a deleted route: %v", err)
	}

	// A node whose instance cannot be found is an error wrapping ErrNoInstance.
	err = a.CreateRoute(c.ctx, "kubernetes", "uid-3", &cloudprovider.Route{TargetNode: "worker-3", DestinationCIDR: "10.0.3.0/24"})
	if !errors.Is(err, route.ErrNoInstance) {
		t.Errorf("CreateRoute for an unknown node: %v, want ErrNoInstance", err)
	}
}

// TestConcurrentCreateRoutes drives the adapter as the upstream route
// controller does, one goroutine per node; run with -race it also checks
// that no SDK client is shared between concurrent calls.
func TestConcurrentCreateRoutes(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	c := newTestCloud(t, ts, nil, testTuning(nil, nil))
	a := c.RoutesAdapter(nil)
	nodes := []string{"i-2vcxxr", "i-2vcxxs", "i-2vcxxt"}
	errs := make(chan error, 9)
	for i := range 9 {
		go func() {
			errs <- a.CreateRoute(c.ctx, "kubernetes", "", &cloudprovider.Route{
				TargetNode:      types.NodeName("cn-chengdu." + nodes[i%3]),
				DestinationCIDR: fmt.Sprintf("10.1.%d.0/24", i),
			})
		}()
	}
	for range 9 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	rs, err := a.ListRoutes(c.ctx, "")
	if err != nil || len(rs) != 9 {
		t.Fatalf("ListRoutes = %d routes, %v; want 9", len(rs), err)
	}
}

// TestAdapterLooksUpOnlyItsDestination checks that a CreateRoute in a big
// table neither lists nor polls the whole table: the upstream controller
// calls it once per node, concurrently.
func TestAdapterLooksUpOnlyItsDestination(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	if err := ts.Sim.SetQuota(alisim.DefaultTableID, 1000); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + byte(i/256), byte(i % 256), 0}), 24)
		if _, err := ts.Sim.PutRoute(alisim.RouteEntry{TableID: alisim.DefaultTableID, Destination: dst, NextHopID: "i-2vcxxs"}); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	c := newTestCloud(t, ts, nil, testTuning(nil, rec))
	rec.calls("DescribeRouteEntryList")
	a := c.RoutesAdapter(nil)
	if err := a.CreateRoute(c.ctx, "", "", &cloudprovider.Route{TargetNode: "cn-chengdu.i-2vcxxr", DestinationCIDR: "10.0.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRoute(c.ctx, "", &cloudprovider.Route{TargetNode: "cn-chengdu.i-2vcxxr", DestinationCIDR: "10.0.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	calls := rec.calls("DescribeRouteEntryList")
	if len(calls) < 3 {
		t.Fatalf("%d DescribeRouteEntryList calls: want the existence check and the polls of create and delete", len(calls))
	}
	for _, q := range calls {
		if got := q.Get("DestinationCidrBlock"); got != "10.0.1.0/24" {
			t.Errorf("DescribeRouteEntryList without the destination filter (DestinationCidrBlock=%q)", got)
		}
	}
}
