package ipam

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func testListKinds() map[schema.GroupVersionResource]string {
	kinds := map[schema.GroupVersionResource]string{
		SpiderIPPoolGVR: "SpiderIPPoolList",
		crdGVR:          "CustomResourceDefinitionList",
	}
	for _, api := range []CalicoAPI{CalicoV1, CalicoV3} {
		kinds[api.Affinities] = "BlockAffinityList"
		kinds[api.Pools] = "IPPoolList"
		kinds[api.Blocks] = "IPAMBlockList"
		kinds[api.Config] = calicoConfigKind(api) + "List"
	}
	return kinds
}

func calicoConfigKind(api CalicoAPI) string {
	if api == CalicoV3 {
		return "IPAMConfiguration"
	}
	return "IPAMConfig"
}

// allCalico is the discovery of a cluster serving the four resources in
// api's group.
func allCalico(api CalicoAPI) CalicoDiscovery {
	served := map[string]bool{}
	for _, r := range api.resources() {
		served[r.Resource] = true
	}
	return CalicoDiscovery{API: api, Served: served}
}

// calicoFixture builds Calico objects the way each API group stores them.
type calicoFixture struct{ api CalicoAPI }

func (f calicoFixture) obj(gvr schema.GroupVersionResource, kind, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(gvr.GroupVersion().String())
	u.SetKind(kind)
	u.SetName(name)
	u.SetCreationTimestamp(metav1.Unix(1767225600, 0))
	return u
}

// affinity is a BlockAffinity named as Calico names them (node-cidr).
func (f calicoFixture) affinity(node, cidr, state string, deleted bool) *unstructured.Unstructured {
	var del any = deleted // projectcalico.org/v3: a boolean
	if f.api == CalicoV1 {
		del = fmt.Sprint(deleted) // crd.projectcalico.org/v1: a string
	}
	name := node + "-" + strings.NewReplacer(".", "-", "/", "-", ":", "-").Replace(cidr)
	return f.obj(f.api.Affinities, "BlockAffinity", name, map[string]any{
		"node": node, "cidr": cidr, "state": state, "deleted": del, "type": "host",
	})
}

func (f calicoFixture) pool(name, cidr, ipip, vxlan string) *unstructured.Unstructured {
	spec := map[string]any{"cidr": cidr, "blockSize": int64(26), "natOutgoing": true}
	if ipip != "" {
		spec["ipipMode"] = ipip
	}
	if vxlan != "" {
		spec["vxlanMode"] = vxlan
	}
	return f.obj(f.api.Pools, "IPPool", name, spec)
}

// block is an IPAMBlock affine to host ("" for none) whose ordinal i is
// allocated to a pod of owners[i] ("" leaves it free).
func (f calicoFixture) block(cidr, host string, owners ...string) *unstructured.Unstructured {
	var allocations, attributes []any
	for _, o := range owners {
		if o == "" {
			allocations = append(allocations, nil)
			continue
		}
		allocations = append(allocations, int64(len(attributes)))
		attributes = append(attributes, map[string]any{
			"handle_id": "k8s-pod-network." + o,
			"secondary": map[string]any{"namespace": "default", "node": o, "pod": "pod-" + o, "timestamp": "2026-01-01 00:00:00"},
		})
	}
	spec := map[string]any{
		"cidr": cidr, "allocations": allocations, "attributes": attributes,
		"unallocated": []any{}, "strictAffinity": false, "deleted": false,
	}
	if host != "" {
		spec["affinity"] = "host:" + host
	}
	name := strings.NewReplacer(".", "-", "/", "-", ":", "-").Replace(cidr)
	return f.obj(f.api.Blocks, "IPAMBlock", name, spec)
}

func (f calicoFixture) config(strict bool) *unstructured.Unstructured {
	return f.obj(f.api.Config, calicoConfigKind(f.api), calicoConfigName, map[string]any{
		"strictAffinity": strict, "autoAllocateBlocks": true,
	})
}

func snapshotOf(objs ...*unstructured.Unstructured) calicoState {
	st := calicoState{blocksKnown: true, config: calicoConfig{known: true}}
	for _, u := range objs {
		switch u.GetKind() {
		case "BlockAffinity":
			st.affinities = append(st.affinities, u)
		case "IPPool":
			st.pools = append(st.pools, u)
		case "IPAMBlock":
			st.blocks = append(st.blocks, u)
		case "IPAMConfig", "IPAMConfiguration":
			st.config.strictAffinity, _, _ = unstructured.NestedBool(u.Object, "spec", "strictAffinity")
		}
	}
	return st
}

// calicoOutcome renders the routes after overlap resolution, the problems
// and the notes of a snapshot.
func calicoOutcome(st calicoState) (routes, problems, notes []string) {
	res := calicoClaims(st, testClusterCIDRs)
	rs, overlaps := resolve(res.claims)
	for _, r := range rs {
		routes = append(routes, r.Node+" "+r.Destination.String())
	}
	for _, p := range append(res.problems, overlaps...) {
		problems = append(problems, p.Object+" "+p.Reason)
	}
	for _, n := range res.notes {
		notes = append(notes, n.Object+": "+n.Message)
	}
	return routes, problems, notes
}

func forBothGroups(t *testing.T, f func(t *testing.T, fx calicoFixture)) {
	for _, api := range []CalicoAPI{CalicoV1, CalicoV3} {
		t.Run(api.GroupVersion(), func(t *testing.T) { f(t, calicoFixture{api: api}) })
	}
}

// TestCalicoAffinityStates: only confirmed, not deleted host affinities
// are routed, whichever group stores them.
func TestCalicoAffinityStates(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		virtual := fx.affinity("lb", "10.244.0.192/26", "confirmed", false)
		_ = unstructured.SetNestedField(virtual.Object, "virtual", "spec", "type")
		routes, problems, _ := calicoOutcome(snapshotOf(
			fx.config(true),
			fx.pool("default", "10.244.0.0/16", "Never", "Never"),
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.0.64/26", "pending", false),
			fx.affinity("node-c", "10.244.0.128/26", "pendingDeletion", false),
			fx.affinity("node-d", "10.244.1.0/26", "confirmed", true),
			fx.affinity("node-e", "10.244.2.0/26", "", false),
			virtual,
		))
		if want := []string{"node-a 10.244.0.0/26"}; !slices.Equal(routes, want) {
			t.Errorf("routes = %q, want %q", routes, want)
		}
		if len(problems) != 0 {
			t.Errorf("problems = %q, want none", problems)
		}
	})
}

// TestCalicoAffinityMoves: a block whose confirmed affinity names another
// node is routed to that node (the old node's affinity is released first:
// pendingDeletion, then gone).
func TestCalicoAffinityMoves(t *testing.T) {
	fx := calicoFixture{api: CalicoV1}
	base := []*unstructured.Unstructured{fx.config(true), fx.pool("default", "10.244.0.0/16", "Never", "Never")}
	routes, _, _ := calicoOutcome(snapshotOf(append(base,
		fx.affinity("node-a", "10.244.0.64/26", "pendingDeletion", false),
		fx.affinity("node-b", "10.244.0.64/26", "confirmed", false))...))
	if want := []string{"node-b 10.244.0.64/26"}; !slices.Equal(routes, want) {
		t.Errorf("routes = %q, want %q", routes, want)
	}
}

// TestCalicoInvalidObjects: an unreadable affinity or pool is a problem of
// its own and keeps no other block from its route.
func TestCalicoInvalidObjects(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		badCIDR := fx.affinity("node-b", "10.244.0.64/26", "confirmed", false)
		_ = unstructured.SetNestedField(badCIDR.Object, "10.244.0.64/33", "spec", "cidr")
		badDeleted := fx.affinity("node-c", "10.244.0.128/26", "confirmed", false)
		_ = unstructured.SetNestedField(badDeleted.Object, "maybe", "spec", "deleted")
		badPool := fx.pool("broken", "", "Never", "Never")
		routes, problems, _ := calicoOutcome(snapshotOf(
			fx.config(true), fx.pool("default", "10.244.0.0/16", "Never", "Never"), badPool,
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false), badCIDR, badDeleted,
		))
		if want := []string{"node-a 10.244.0.0/26"}; !slices.Equal(routes, want) {
			t.Errorf("routes = %q, want %q", routes, want)
		}
		want := []string{
			"BlockAffinity/" + badCIDR.GetName() + " InvalidCalicoObject",
			"BlockAffinity/" + badDeleted.GetName() + " InvalidCalicoObject",
			"IPPool/broken InvalidCalicoObject",
		}
		slices.Sort(problems)
		if !slices.Equal(problems, want) {
			t.Errorf("problems = %q, want %q", problems, want)
		}
	})
}

// TestCalicoPoolFiltering: blocks of tunnelled pools (IPIP or VXLAN,
// Always or CrossSubnet) need no VPC route; pools without modes are
// Never; disabled pools' blocks stay routed while they hold addresses;
// load-balancer pools are not pods'. Tunnelled pools are noted.
func TestCalicoPoolFiltering(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		disabled := fx.pool("draining", "10.244.64.0/20", "Never", "Never")
		_ = unstructured.SetNestedField(disabled.Object, true, "spec", "disabled")
		lb := fx.pool("lb", "10.244.96.0/20", "", "")
		_ = unstructured.SetNestedStringSlice(lb.Object, []string{"LoadBalancer"}, "spec", "allowedUses")
		workload := fx.pool("workload", "10.244.112.0/20", "", "")
		_ = unstructured.SetNestedStringSlice(workload.Object, []string{"Workload"}, "spec", "allowedUses")
		routes, problems, notes := calicoOutcome(snapshotOf(
			fx.config(true),
			fx.pool("routed", "10.244.0.0/20", "Never", "Never"),
			fx.pool("defaults", "10.244.16.0/20", "", ""),
			fx.pool("ipip", "10.244.32.0/20", "Always", "Never"),
			fx.pool("vxlan-cross", "10.244.48.0/20", "Never", "CrossSubnet"),
			disabled, lb, workload,
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
			fx.affinity("node-a", "10.244.16.0/26", "confirmed", false),
			fx.affinity("node-a", "10.244.32.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.48.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.64.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.96.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.112.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.64.64/26", "confirmed", false),
			// In no pool: the pool was deleted while in use.
			fx.affinity("node-c", "10.244.200.0/26", "confirmed", false),
			// The disabled pool's first block still holds a pod, the
			// second is empty (drained).
			fx.block("10.244.64.0/26", "node-b", "node-b"),
			fx.block("10.244.64.64/26", "node-b", ""),
		))
		want := []string{
			"node-a 10.244.0.0/26", "node-a 10.244.16.0/26",
			"node-b 10.244.64.0/26", "node-b 10.244.112.0/26",
			"node-c 10.244.200.0/26",
		}
		if !slices.Equal(routes, want) {
			t.Errorf("routes = %q, want %q", routes, want)
		}
		orphan := fx.affinity("node-c", "10.244.200.0/26", "confirmed", false).GetName()
		if want := []string{"BlockAffinity/" + orphan + " BlockWithoutPool"}; !slices.Equal(problems, want) {
			t.Errorf("problems = %q, want %q", problems, want)
		}
		joined := strings.Join(notes, "\n")
		for _, s := range []string{"IPPool/ipip: IPPool ipip (10.244.32.0/20, ipipMode Always, vxlanMode Never) is tunnelled: its 1 confirmed blocks",
			"IPPool/vxlan-cross: IPPool vxlan-cross (10.244.48.0/20, ipipMode Never, vxlanMode CrossSubnet) is tunnelled",
			"IPPool/draining: IPPool draining (10.244.64.0/20) is disabled: its confirmed blocks stay routed while they hold addresses (1 empty blocks are not routed)"} {
			if !strings.Contains(joined, s) {
				t.Errorf("notes lack %q:\n%s", s, joined)
			}
		}
	})
}

// TestCalicoOutsideClusterCIDR: a routed pool's blocks outside the cluster
// CIDRs are reported on the pool, never routed.
func TestCalicoOutsideClusterCIDR(t *testing.T) {
	fx := calicoFixture{api: CalicoV3}
	routes, problems, _ := calicoOutcome(snapshotOf(
		fx.config(true), fx.pool("other", "192.168.0.0/16", "Never", "Never"),
		fx.affinity("node-a", "192.168.0.0/26", "confirmed", false),
	))
	if len(routes) != 0 || !slices.Equal(problems, []string{"IPPool/other OutsideClusterCIDR"}) {
		t.Errorf("routes %q, problems %q; want none and IPPool/other OutsideClusterCIDR", routes, problems)
	}
}

// TestCalicoBorrowing: strictAffinity off is reported on the IPAM
// configuration (also when it does not exist: Calico's default), and every
// node whose pods hold addresses of another node's block (or of a block
// affine to no node) is reported with the fix. Tunnelled pools' blocks
// are not routed, so borrowing there does not matter.
func TestCalicoBorrowing(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		objs := []*unstructured.Unstructured{
			fx.pool("default", "10.244.0.0/16", "Never", "Never"),
			fx.pool("tunnel", "10.245.0.0/16", "Always", "Never"),
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
			fx.affinity("node-b", "10.244.0.64/26", "confirmed", false),
			// node-b's pods borrowed ordinals 2 and 3 of node-a's block.
			fx.block("10.244.0.0/26", "node-a", "node-a", "node-a", "node-b", "node-b", "", "node-a"),
			fx.block("10.244.0.64/26", "node-b", "node-b"),
			// A block affine to no node still holding node-c's pod.
			fx.block("10.244.0.128/26", "", "", "node-c"),
			fx.block("10.245.0.0/26", "node-a", "node-b"),
		}
		st := snapshotOf(objs...)
		res := calicoClaims(st, testClusterCIDRs)
		got := map[string]route.Problem{}
		for _, p := range res.problems {
			got[p.Object+" "+p.Reason] = p
		}
		want := []string{"IPAMConfig/default StrictAffinityDisabled", "Node/node-b BorrowedAddresses", "Node/node-c BorrowedAddresses"}
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
			t.Fatalf("problems = %q, want %q", keys, want)
		}
		b := got["Node/node-b BorrowedAddresses"]
		for _, s := range []string{"2 addresses", "10.244.0.2 in block 10.244.0.0/26 of node node-a", strictAffinityFix} {
			if !strings.Contains(b.Message, s) {
				t.Errorf("node-b's problem %q lacks %q", b.Message, s)
			}
		}
		if b.Node != "node-b" {
			t.Errorf("node-b's problem is attributed to %q", b.Node)
		}
		if c := got["Node/node-c BorrowedAddresses"]; !strings.Contains(c.Message, "10.244.0.129 in block 10.244.0.128/26 of no node") {
			t.Errorf("node-c's problem %q does not name the unaffine block", c.Message)
		}
		if s := got["IPAMConfig/default StrictAffinityDisabled"]; !strings.Contains(s.Message, strictAffinityFix) {
			t.Errorf("the strictAffinity problem %q lacks the fix", s.Message)
		}

		// strictAffinity on: the borrowed addresses are still there (they
		// predate the change) and still reported; the risk is not.
		res = calicoClaims(snapshotOf(append(objs, fx.config(true))...), testClusterCIDRs)
		var reasons []string
		for _, p := range res.problems {
			reasons = append(reasons, p.Object+" "+p.Reason)
		}
		if want := []string{"Node/node-b BorrowedAddresses", "Node/node-c BorrowedAddresses"}; !slices.Equal(reasons, want) {
			t.Errorf("with strictAffinity: problems = %q, want %q", reasons, want)
		}

		// IPAMBlocks and the configuration unreadable: nothing is
		// claimed about borrowing, and the notes say so.
		st = snapshotOf(objs...)
		st.blocksKnown, st.blocks, st.config = false, nil, calicoConfig{}
		res = calicoClaims(st, testClusterCIDRs)
		if len(res.problems) != 0 {
			t.Errorf("without IPAMBlocks and config: problems %v, want none", res.problems)
		}
		if len(res.notes) < 2 || !strings.Contains(fmt.Sprint(res.notes), "addresses borrowed") {
			t.Errorf("without IPAMBlocks: notes %v do not say borrowing is unchecked", res.notes)
		}
	})
}

func TestDecodeBlockAddresses(t *testing.T) {
	fx := calicoFixture{api: CalicoV1}
	b, err := decodeBlock(fx.block("fd00:10:244::100/122", "node-a", "", "node-b"))
	if err != nil {
		t.Fatal(err)
	}
	if b.allocated != 1 || b.foreign["node-b"] != 1 || b.firstForeign["node-b"] != netip.MustParseAddr("fd00:10:244::101") {
		t.Errorf("decoded %+v", b)
	}
	if got := nthAddr(netip.MustParsePrefix("10.244.0.192/26"), 63); got != netip.MustParseAddr("10.244.0.255") {
		t.Errorf("nthAddr = %s", got)
	}
}

// TestMergeSiblings: blocks merge only with their sibling, into the
// parent, bottom-up.
func TestMergeSiblings(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.244.0.0/26", "10.244.0.0/26"},
		{"10.244.0.0/26,10.244.0.64/26", "10.244.0.0/25"},
		{"10.244.0.0/26,10.244.0.64/26,10.244.0.128/26,10.244.0.192/26", "10.244.0.0/24"},
		// Adjacent but not siblings: 10.244.0.64/26 and 10.244.0.128/26.
		{"10.244.0.64/26,10.244.0.128/26", "10.244.0.64/26,10.244.0.128/26"},
		{"10.244.0.0/26,10.244.0.64/26,10.244.0.128/26", "10.244.0.0/25,10.244.0.128/26"},
		// Mixed sizes: /26 + /26 = /25, then /25 + /25 = /24.
		{"10.244.0.0/25,10.244.0.128/26,10.244.0.192/26", "10.244.0.0/24"},
		{"10.244.0.0/26,10.244.0.0/26", "10.244.0.0/26"},
		{"10.244.0.0/24,10.244.0.64/26", "10.244.0.0/24"},
		{"fd00:10:244::/122,fd00:10:244::40/122", "fd00:10:244::/121"},
		{"10.244.0.0/26,fd00:10:244::/122", "10.244.0.0/26,fd00:10:244::/122"},
	}
	for _, tt := range tests {
		got := joinPrefixes(mergeSiblings(prefixList(t, tt.in)))
		if got != tt.want {
			t.Errorf("mergeSiblings(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestMergedPrefixesCoverExactlyTheirNodesBlocks is the property behind the
// aggregation: for random block layouts of a pool shared by several nodes,
// every merged prefix covers only blocks of its own node (never another
// node's block, never a free block), every block is covered, and no two
// prefixes of a node could be merged further.
func TestMergedPrefixesCoverExactlyTheirNodesBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 26))
	pool := netip.MustParsePrefix("10.244.0.0/20")
	for iter := range 500 {
		blockBits := 24 + r.IntN(5) // /24 .. /28 blocks
		nblocks := 1 << (blockBits - pool.Bits())
		nodes := 1 + r.IntN(6)
		owner := make([]int, nblocks) // -1: free
		byNode := map[string][]calicoAffinity{}
		for i := range owner {
			owner[i] = r.IntN(nodes+1) - 1
			if owner[i] < 0 {
				continue
			}
			n := fmt.Sprintf("node-%d", owner[i])
			byNode[n] = append(byNode[n], calicoAffinity{name: fmt.Sprintf("b%d", i), node: n, cidr: blockAt(pool, blockBits, i)})
		}
		claims, _ := mergeNodeBlocks(byNode, nil)
		covered := make([]int, nblocks)
		merged := map[string][]netip.Prefix{}
		for _, c := range claims {
			merged[c.node] = append(merged[c.node], c.dest)
			for i := range nblocks {
				b := blockAt(pool, blockBits, i)
				if !c.dest.Overlaps(b) {
					continue
				}
				if !prefixContains(c.dest, b) {
					t.Fatalf("iteration %d: %s of %s cuts block %s", iter, c.dest, c.node, b)
				}
				if owner[i] < 0 || fmt.Sprintf("node-%d", owner[i]) != c.node {
					t.Fatalf("iteration %d: %s of %s covers block %s of owner %d", iter, c.dest, c.node, b, owner[i])
				}
				covered[i]++
			}
		}
		for i, o := range owner {
			if want := min(o+1, 1); covered[i] != want {
				t.Fatalf("iteration %d: block %s (owner %d) covered %d times", iter, blockAt(pool, blockBits, i), o, covered[i])
			}
		}
		for n, ps := range merged {
			for _, p := range ps {
				if slices.Contains(ps, sibling(p)) {
					t.Fatalf("iteration %d: %s keeps siblings %s and %s unmerged", iter, n, p, sibling(p))
				}
			}
		}
	}
}

func blockAt(pool netip.Prefix, bits, i int) netip.Prefix {
	return netip.PrefixFrom(nthAddr(pool, i<<(32-bits)), bits)
}

// TestCalicoEntryCountNotes: a node whose blocks cannot all be merged gets
// a note with its entry count.
func TestCalicoEntryCountNotes(t *testing.T) {
	fx := calicoFixture{api: CalicoV1}
	routes, _, notes := calicoOutcome(snapshotOf(
		fx.config(true), fx.pool("default", "10.244.0.0/16", "Never", "Never"),
		fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
		fx.affinity("node-a", "10.244.0.64/26", "confirmed", false),
		fx.affinity("node-a", "10.244.0.192/26", "confirmed", false),
		fx.affinity("node-b", "10.244.0.128/26", "confirmed", false),
	))
	if want := []string{"node-a 10.244.0.0/25", "node-a 10.244.0.192/26", "node-b 10.244.0.128/26"}; !slices.Equal(routes, want) {
		t.Errorf("routes = %q, want %q", routes, want)
	}
	if want := []string{
		"Node/node-a: Node node-a has 3 Calico blocks, published as 2 route entries per table (10.244.0.0/25,10.244.0.192/26).",
		": Calico IPAM: 4 confirmed blocks of 2 nodes are published as 3 route entries per table.",
	}; !slices.Equal(notes, want) {
		t.Errorf("notes = %q, want %q", notes, want)
	}
}

func TestDiscoverCalico(t *testing.T) {
	list := func(api CalicoAPI, resources ...string) *metav1.APIResourceList {
		l := &metav1.APIResourceList{GroupVersion: api.GroupVersion()}
		for _, r := range resources {
			l.APIResources = append(l.APIResources, metav1.APIResource{Name: r})
		}
		return l
	}
	all := func(api CalicoAPI) *metav1.APIResourceList {
		return list(api, api.Affinities.Resource, api.Pools.Resource, api.Blocks.Resource, api.Config.Resource, "felixconfigurations")
	}
	tests := []struct {
		name      string
		resources []*metav1.APIResourceList
		wantAPI   CalicoAPI
		wantFound bool
		wantAll   bool
	}{
		{name: "no Calico", wantAPI: CalicoV1},
		{name: "v1 CRDs", resources: []*metav1.APIResourceList{all(CalicoV1)}, wantAPI: CalicoV1, wantFound: true, wantAll: true},
		{name: "v3 CRDs only", resources: []*metav1.APIResourceList{all(CalicoV3)}, wantAPI: CalicoV3, wantFound: true, wantAll: true},
		// Calico's API server serves v3 in front of the v1 CRDs: read v1.
		{name: "both", resources: []*metav1.APIResourceList{all(CalicoV3), all(CalicoV1)}, wantAPI: CalicoV1, wantFound: true, wantAll: true},
		{name: "v3 without IPAM blocks", resources: []*metav1.APIResourceList{list(CalicoV3, "blockaffinities", "ippools")}, wantAPI: CalicoV3, wantFound: true},
		{name: "pools only", resources: []*metav1.APIResourceList{list(CalicoV1, "ippools")}, wantAPI: CalicoV1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := kubefake.NewClientset().Discovery().(*fakediscovery.FakeDiscovery)
			fd.Resources = tt.resources
			d, err := DiscoverCalico(fd)
			if err != nil {
				t.Fatal(err)
			}
			if d.API != tt.wantAPI || d.Found() != tt.wantFound || (len(d.Served) == 4) != tt.wantAll {
				t.Errorf("DiscoverCalico = %s found=%v served=%v; want %s found=%v all=%v",
					d.API.GroupVersion(), d.Found(), d.Served, tt.wantAPI.GroupVersion(), tt.wantFound, tt.wantAll)
			}
		})
	}
}

// TestCalicoSource runs the source on informers: routes follow the
// affinities as they are confirmed, moved and released, in either group.
func TestCalicoSource(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		nodes := fixtureNodesWithoutCIDRs()
		h := newHarnessOpts(t, ModeCalico, nodes, Options{ClusterCIDRs: testClusterCIDRs, Calico: allCalico(fx.api)}, nil,
			fx.config(true), fx.pool("default", "10.244.0.0/16", "Never", "Never"), fx.pool("vxlan", "10.245.0.0/16", "Never", "Always"),
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
			fx.affinity("node-a", "10.244.0.64/26", "confirmed", false),
			fx.affinity("node-b", "10.244.0.128/26", "confirmed", false),
			fx.affinity("node-c", "10.245.0.0/26", "confirmed", false),
		)
		h.eventually(t, state{routes: []string{"node-a 10.244.0.0/25", "node-b 10.244.0.128/26"}})

		// Calico moves 10.244.0.64/26 to node-b: released by node-a,
		// confirmed for node-b.
		moved := fx.affinity("node-a", "10.244.0.64/26", "pendingDeletion", false)
		before := h.changes.Load()
		if _, err := h.dyn.Resource(fx.api.Affinities).Update(h.ctx, moved, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.waitForChange(t, before)
		if _, err := h.dyn.Resource(fx.api.Affinities).Create(h.ctx, fx.affinity("node-b", "10.244.0.64/26", "confirmed", false), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.eventually(t, state{routes: []string{"node-a 10.244.0.0/26", "node-b 10.244.0.64/26", "node-b 10.244.0.128/26"}})

		// Turning strictAffinity off is reported.
		if _, err := h.dyn.Resource(fx.api.Config).Update(h.ctx, fx.config(false), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		h.eventually(t, state{
			routes:   []string{"node-a 10.244.0.0/26", "node-b 10.244.0.64/26", "node-b 10.244.0.128/26"},
			problems: []string{"IPAMConfig/default StrictAffinityDisabled"},
		})
		if notes := h.src.Notes(); !strings.Contains(fmt.Sprint(notes), "IPPool vxlan") {
			t.Errorf("notes %v do not mention the tunnelled pool", notes)
		}
	})
}

func fixtureNodesWithoutCIDRs() []*corev1.Node {
	return []*corev1.Node{
		node("node-a", "2026-01-01T00:00:00Z"),
		node("node-b", "2026-01-01T00:00:01Z"),
		node("node-c", "2026-01-01T00:00:02Z"),
	}
}

// TestAutoSourceCalico: auto mode routes Calico's blocks only when no node
// has a podCIDR; with both, it routes the podCIDRs and reports the mix.
func TestAutoSourceCalico(t *testing.T) {
	fx := calicoFixture{api: CalicoV1}
	objs := []*unstructured.Unstructured{
		fx.config(true), fx.pool("default", "10.244.0.0/16", "Never", "Never"),
		fx.affinity("node-a", "10.244.8.0/26", "confirmed", false),
	}
	opts := Options{ClusterCIDRs: testClusterCIDRs, Calico: allCalico(fx.api)}
	t.Run("calico only", func(t *testing.T) {
		h := newHarnessOpts(t, ModeAuto, fixtureNodesWithoutCIDRs(), opts, nil, objs...)
		h.eventually(t, state{routes: []string{"node-a 10.244.8.0/26"}})
		if notes := fmt.Sprint(h.src.Notes()); !strings.Contains(notes, "routes Calico's block affinities") {
			t.Errorf("notes %s do not say auto mode chose Calico", notes)
		}
	})
	t.Run("mixed", func(t *testing.T) {
		nodes := append(fixtureNodesWithoutCIDRs(), node("node-d", "2026-01-01T00:00:03Z", "10.244.3.0/24"))
		h := newHarnessOpts(t, ModeAuto, nodes, opts, nil, objs...)
		h.eventually(t, state{routes: []string{"node-d 10.244.3.0/24"}, problems: []string{"BlockAffinity/ MixedCIDRSources"}})
	})
	t.Run("no affinities", func(t *testing.T) {
		h := newHarnessOpts(t, ModeAuto, fixtureNodes(), opts, nil, objs[:2]...)
		h.eventually(t, state{routes: nodeRoutesOf(fixtureNodes())})
	})
}

func nodeRoutesOf(nodes []*corev1.Node) []string {
	var out []string
	for _, n := range nodes {
		for _, c := range n.Spec.PodCIDRs {
			out = append(out, n.Name+" "+netip.MustParsePrefix(c).Masked().String())
		}
	}
	slices.Sort(out)
	return out
}

// calicoCRDDir holds Calico's real IPAM CRDs, beside the repository.
var calicoCRDDir = filepath.Join("..", "..", "..", "shared", "testdata", "calico")

// calicoSchema returns the OpenAPI schema of gvr from its real CRD.
func calicoSchema(t *testing.T, gvr schema.GroupVersionResource) *spec.Schema {
	t.Helper()
	path := filepath.Join(calicoCRDDir, gvr.Group+"_"+gvr.Resource+".yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no CRD for %s in the shared test data", gvr)
	}
	crd := loadYAMLObjects(t, path)[0]
	if p, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural"); p != gvr.Resource {
		t.Fatalf("%s: plural %q, want %q", path, p, gvr.Resource)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m := v.(map[string]any)
		if m["name"] != gvr.Version {
			continue
		}
		raw, _, _ := unstructured.NestedMap(m, "schema", "openAPIV3Schema")
		js, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		var s spec.Schema
		if err := json.Unmarshal(js, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	t.Fatalf("%s does not serve %s", path, gvr.Version)
	return nil
}

// TestCalicoFixturesMatchCRDs: the objects the tests feed the source are
// what the real CRDs accept, in both groups (so the field names and types
// the decoder reads are Calico's), and the schemas reject a misspelled
// mode, so the check can fail.
func TestCalicoFixturesMatchCRDs(t *testing.T) {
	forBothGroups(t, func(t *testing.T, fx calicoFixture) {
		for _, u := range []*unstructured.Unstructured{
			fx.affinity("node-a", "10.244.0.0/26", "confirmed", false),
			fx.affinity("node-a", "10.244.0.64/26", "pendingDeletion", true),
			fx.pool("default", "10.244.0.0/16", "Never", "Never"),
			fx.pool("vxlan", "10.245.0.0/16", "Never", "CrossSubnet"),
			fx.block("10.244.0.0/26", "node-a", "node-a", "", "node-b"),
			fx.config(true),
		} {
			gvr := schema.GroupVersionResource{Group: fx.api.Affinities.Group, Version: fx.api.Affinities.Version}
			switch u.GetKind() {
			case "BlockAffinity":
				gvr = fx.api.Affinities
			case "IPPool":
				gvr = fx.api.Pools
			case "IPAMBlock":
				gvr = fx.api.Blocks
			default:
				gvr = fx.api.Config
			}
			t.Run(gvr.Resource+"/"+u.GetName(), func(t *testing.T) {
				s := calicoSchema(t, gvr)
				if err := validate.AgainstSchema(s, u.UnstructuredContent(), strfmt.Default); err != nil {
					t.Errorf("%s does not match the CRD: %v", u.GetName(), err)
				}
			})
		}
		bad := fx.pool("bad", "10.244.0.0/16", "Sometimes", "Never")
		if err := validate.AgainstSchema(calicoSchema(t, fx.api.Pools), bad.UnstructuredContent(), strfmt.Default); err == nil {
			t.Error("a pool with ipipMode Sometimes passed validation")
		}
	})
}

func TestBlockChanged(t *testing.T) {
	fx := calicoFixture{api: CalicoV1}
	base := fx.block("10.244.0.0/26", "node-a", "node-a", "")
	for name, tt := range map[string]struct {
		n    *unstructured.Unstructured
		want bool
	}{
		"allocation churn":  {fx.block("10.244.0.0/26", "node-a", "", "node-a", "node-a"), false},
		"emptied":           {fx.block("10.244.0.0/26", "node-a", "", ""), true},
		"borrowed":          {fx.block("10.244.0.0/26", "node-a", "node-a", "node-b"), true},
		"affinity released": {fx.block("10.244.0.0/26", "", "node-a", ""), true},
	} {
		if got := blockChanged(base, tt.n); got != tt.want {
			t.Errorf("%s: blockChanged = %v, want %v", name, got, tt.want)
		}
	}
	trimmed, _ := trimBlock(fx.block("10.244.0.0/26", "node-a", "node-b"))
	b, err := decodeBlock(trimmed.(*unstructured.Unstructured))
	if err != nil || b.foreign["node-b"] != 1 {
		t.Errorf("a trimmed block decodes as %+v, %v; want node-b's borrowed address kept", b, err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(trimmed.(*unstructured.Unstructured).Object, "spec", "unallocated"); found {
		t.Error("trimBlock kept spec.unallocated")
	}
}
