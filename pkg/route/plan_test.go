package route

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

const testCluster = "c1"

func testPolicy() Policy {
	return Policy{
		ClusterID:      testCluster,
		ClusterCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/56")},
		MaxDeleteRatio: 0.5,
	}
}

// want is a desired route.
func want(table, dst, hop, node string) Route {
	return Route{Table: table, Destination: netip.MustParsePrefix(dst), NextHop: hop, Node: node}
}

// ours is an owned, Available entry.
func ours(table, dst, hop, node string) Route {
	r := want(table, dst, hop, node)
	r.Owner, r.Status, r.EntryID = testCluster, StatusAvailable, "rte-"+table+"-"+dst
	return r
}

func foreign(table, dst, hop, owner string) Route {
	r := want(table, dst, hop, "")
	r.Owner, r.Status, r.EntryID = owner, StatusAvailable, "rte-"+table+"-"+dst
	return r
}

func withStatus(r Route, s string) Route { r.Status = s; return r }

func withNode(r Route, n string) Route { r.Node = n; return r }

func TestDiff(t *testing.T) {
	vpn := foreign("t1", "10.0.1.0/24", "vpn-1", testCluster)
	vpn.NextHopType = "VpnGateway"
	unmasked := ours("t1", "10.0.1.0/24", "i-a", "a")
	unmasked.Destination = netip.MustParsePrefix("10.0.1.7/24")

	tests := []struct {
		name    string
		desired []Route
		current []Route
		policy  func(*Policy)
		want    Plan
	}{
		{
			name: "nothing wanted, nothing there",
			want: Plan{},
		},
		{
			name:    "missing route is created",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			want:    Plan{Create: []Route{want("t1", "10.0.1.0/24", "i-a", "a")}},
		},
		{
			name:    "route in sync",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{ours("t1", "10.0.1.0/24", "i-a", "a")},
			want:    Plan{InSync: []Route{ours("t1", "10.0.1.0/24", "i-a", "a")}, Owned: 1},
		},
		{
			name:    "entry without status is read as Available",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), "")},
			want:    Plan{InSync: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), "")}, Owned: 1},
		},
		{
			name:    "unmasked destination from the cloud is compared masked",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{unmasked},
			want:    Plan{InSync: []Route{ours("t1", "10.0.1.0/24", "i-a", "a")}, Owned: 1},
		},
		{
			name: "stale owned entry of a deleted node is deleted",
			desired: []Route{
				want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "10.0.2.0/24", "i-b", "b"),
			},
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"), ours("t1", "10.0.3.0/24", "i-c", "c"),
			},
			want: Plan{
				InSync: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
				Delete: []Route{ours("t1", "10.0.3.0/24", "i-c", "c")},
				Owned:  3,
			},
		},
		{
			name:    "changed pod CIDR: old route deleted, new one created",
			desired: []Route{want("t1", "10.0.9.0/24", "i-a", "a"), want("t1", "10.0.2.0/24", "i-b", "b")},
			current: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
			want: Plan{
				Create: []Route{want("t1", "10.0.9.0/24", "i-a", "a")},
				Delete: []Route{ours("t1", "10.0.1.0/24", "i-a", "a")},
				InSync: []Route{ours("t1", "10.0.2.0/24", "i-b", "b")},
				Owned:  2,
			},
		},
		{
			name:    "owned entry with the wrong next hop is replaced",
			desired: []Route{want("t1", "10.0.1.0/24", "i-new", "a")},
			current: []Route{ours("t1", "10.0.1.0/24", "i-old", "a")},
			policy:  func(p *Policy) { p.MaxDeleteRatio = 1 },
			want: Plan{
				Create: []Route{want("t1", "10.0.1.0/24", "i-new", "a")},
				Delete: []Route{ours("t1", "10.0.1.0/24", "i-old", "a")},
				Owned:  1,
			},
		},
		{
			name:    "unmarked entry on a desired destination is a conflict",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-x", "")},
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: foreign("t1", "10.0.1.0/24", "i-x", ""), Reason: ConflictUnmarked,
			}}},
		},
		{
			name:    "unmarked exact match without adoption is a conflict, not clobbered",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-a", "")},
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: foreign("t1", "10.0.1.0/24", "i-a", ""), Reason: ConflictUnmarked,
			}}},
		},
		{
			name:    "entry of another cluster is a conflict",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-x", "c2")},
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: foreign("t1", "10.0.1.0/24", "i-x", "c2"), Reason: ConflictOtherCluster,
			}}},
		},
		{
			name:    "entry of another next-hop type is a conflict even with our marker",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{vpn},
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: vpn, Reason: ConflictNextHopType,
			}}},
		},
		{
			name: "foreign entries off our destinations are ignored",
			current: []Route{
				foreign("t1", "10.0.1.0/24", "i-x", ""), foreign("t1", "10.0.2.0/24", "i-x", "c2"), vpn,
				foreign("t1", "0.0.0.0/0", "ngw-1", ""),
			},
			want: Plan{},
		},
		{
			name:    "our marker outside the cluster CIDRs is not ours",
			current: []Route{ours("t1", "172.16.0.0/24", "i-a", "a"), ours("t1", "fd00:99::/64", "i-a", "a")},
			want:    Plan{},
		},
		{
			name:    "unmarked exact match is adopted",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-a", "")},
			policy:  func(p *Policy) { p.AdoptUnmarked = true },
			want:    Plan{Adopt: []Route{withNode(foreign("t1", "10.0.1.0/24", "i-a", ""), "a")}},
		},
		{
			name:    "adoption needs the same next hop",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-x", "")},
			policy:  func(p *Policy) { p.AdoptUnmarked = true },
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: foreign("t1", "10.0.1.0/24", "i-x", ""), Reason: ConflictUnmarked,
			}}},
		},
		{
			name:    "adoption never takes another cluster's entry",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{foreign("t1", "10.0.1.0/24", "i-a", "c2")},
			policy:  func(p *Policy) { p.AdoptUnmarked = true },
			want: Plan{Conflicts: []Conflict{{
				Desired: want("t1", "10.0.1.0/24", "i-a", "a"), Existing: foreign("t1", "10.0.1.0/24", "i-a", "c2"), Reason: ConflictOtherCluster,
			}}},
		},
		{
			name:    "adoptable entry in transition waits",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{withStatus(foreign("t1", "10.0.1.0/24", "i-a", ""), StatusModifying)},
			policy:  func(p *Policy) { p.AdoptUnmarked = true },
			want:    Plan{Pending: []Route{withStatus(foreign("t1", "10.0.1.0/24", "i-a", ""), StatusModifying)}},
		},
		{
			name:    "unmarked stale entries are never deleted, even with adoption",
			current: []Route{foreign("t1", "10.0.1.0/24", "i-a", "")},
			policy:  func(p *Policy) { p.AdoptUnmarked = true },
			want:    Plan{},
		},
		{
			name:    "our Pending entry is pending, not re-created",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusPending)},
			want:    Plan{Pending: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusPending)}, Owned: 1},
		},
		{
			name:    "our Deleting entry on a desired slot defers the create",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
			current: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusDeleting)},
			want: Plan{
				Pending:  []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusDeleting)},
				Deferred: []Route{want("t1", "10.0.1.0/24", "i-a", "a")},
				Owned:    1,
			},
		},
		{
			name:    "stale entry in transition is not deleted yet",
			current: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusPending)},
			want:    Plan{Pending: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-a", "a"), StatusPending)}, Owned: 1},
		},
		{
			name:    "wrong next hop in transition: no delete, create deferred",
			desired: []Route{want("t1", "10.0.1.0/24", "i-new", "a")},
			current: []Route{withStatus(ours("t1", "10.0.1.0/24", "i-old", "a"), StatusModifying)},
			want: Plan{
				Pending:  []Route{withStatus(ours("t1", "10.0.1.0/24", "i-old", "a"), StatusModifying)},
				Deferred: []Route{want("t1", "10.0.1.0/24", "i-new", "a")},
				Owned:    1,
			},
		},
		{
			name:    "desired destination outside the cluster CIDRs is refused",
			desired: []Route{want("t1", "172.16.0.0/24", "i-a", "a"), want("t1", "fd00:99::/64", "i-a", "a")},
			want: Plan{Problems: []Problem{
				{Object: "Node/a", Node: "a", Reason: ReasonOutsideClusterCIDR},
				{Object: "Node/a", Node: "a", Reason: ReasonOutsideClusterCIDR},
			}},
		},
		{
			name:    "destination claimed by two nodes: problem, slot untouched",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "10.0.1.0/24", "i-b", "b")},
			current: []Route{ours("t1", "10.0.1.0/24", "i-a", "a")},
			want: Plan{
				Owned: 1,
				Problems: []Problem{
					{Object: "Node/a", Node: "a", Reason: ReasonDuplicateCIDR},
					{Object: "Node/b", Node: "b", Reason: ReasonDuplicateCIDR},
				},
			},
		},
		{
			name:    "the same desired route twice is one create",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "10.0.1.0/24", "i-a", "a")},
			want:    Plan{Create: []Route{want("t1", "10.0.1.0/24", "i-a", "a")}},
		},
		{
			name: "dual stack in two tables",
			desired: []Route{
				want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "fd00:10:0:1::/64", "i-a", "a"),
				want("t2", "10.0.1.0/24", "i-a", "a"), want("t2", "fd00:10:0:1::/64", "i-a", "a"),
			},
			current: []Route{ours("t2", "fd00:10:0:1::/64", "i-a", "a")},
			want: Plan{
				Create: []Route{
					want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "fd00:10:0:1::/64", "i-a", "a"),
					want("t2", "10.0.1.0/24", "i-a", "a"),
				},
				InSync: []Route{ours("t2", "fd00:10:0:1::/64", "i-a", "a")},
				Owned:  1,
			},
		},
		{
			name: "safety valve: empty desired state deletes nothing",
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"), ours("t1", "10.0.3.0/24", "i-c", "c"),
			},
			want: Plan{
				Withheld: []Route{
					ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"), ours("t1", "10.0.3.0/24", "i-c", "c"),
				},
				SafetyValveTripped: true,
				Owned:              3,
			},
		},
		{
			name:    "safety valve: creates proceed, replacements wait",
			desired: []Route{want("t1", "10.0.4.0/24", "i-d", "d"), want("t1", "10.0.1.0/24", "i-new", "a")},
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"), ours("t1", "10.0.3.0/24", "i-c", "c"),
			},
			want: Plan{
				Create:   []Route{want("t1", "10.0.4.0/24", "i-d", "d")},
				Deferred: []Route{want("t1", "10.0.1.0/24", "i-new", "a")},
				Withheld: []Route{
					ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"), ours("t1", "10.0.3.0/24", "i-c", "c"),
				},
				SafetyValveTripped: true,
				Owned:              3,
			},
		},
		{
			name:    "safety valve: at the ratio deletions proceed",
			desired: []Route{want("t1", "10.0.1.0/24", "i-a", "a"), want("t1", "10.0.2.0/24", "i-b", "b")},
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"),
				ours("t1", "10.0.3.0/24", "i-c", "c"), ours("t1", "10.0.4.0/24", "i-d", "d"),
			},
			want: Plan{
				InSync: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
				Delete: []Route{ours("t1", "10.0.3.0/24", "i-c", "c"), ours("t1", "10.0.4.0/24", "i-d", "d")},
				Owned:  4,
			},
		},
		{
			name: "safety valve: one node's routes never trip it (small clusters)",
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t2", "10.0.1.0/24", "i-a", "a"),
				ours("t1", "fd00:10:0:1::/64", "i-a", "a"), ours("t2", "fd00:10:0:1::/64", "i-a", "a"),
			},
			want: Plan{
				Delete: []Route{
					ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "fd00:10:0:1::/64", "i-a", "a"),
					ours("t2", "10.0.1.0/24", "i-a", "a"), ours("t2", "fd00:10:0:1::/64", "i-a", "a"),
				},
				Owned: 4,
			},
		},
		{
			name:    "safety valve: two of two nodes trip it",
			current: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
			want: Plan{
				Withheld:           []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
				SafetyValveTripped: true,
				Owned:              2,
			},
		},
		{
			name:    "safety valve: ratio 1 disables it",
			current: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
			policy:  func(p *Policy) { p.MaxDeleteRatio = 1 },
			want: Plan{
				Delete: []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
				Owned:  2,
			},
		},
		{
			name: "safety valve: foreign entries do not count as owned",
			current: []Route{
				ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b"),
				foreign("t1", "10.0.5.0/24", "i-x", ""), foreign("t1", "10.0.6.0/24", "i-x", "c2"),
				foreign("t1", "10.0.7.0/24", "i-x", ""), foreign("t1", "10.0.8.0/24", "i-x", ""),
			},
			want: Plan{
				Withheld:           []Route{ours("t1", "10.0.1.0/24", "i-a", "a"), ours("t1", "10.0.2.0/24", "i-b", "b")},
				SafetyValveTripped: true,
				Owned:              2,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			got := Diff(tc.desired, tc.current, p, Facts{})
			// The slots are under test here; causes and the valve's
			// budget have TestDiffValve.
			got.Valve = ValveState{}
			for _, rs := range [][]Route{got.Delete, got.Withheld} {
				for i := range rs {
					rs[i].Cause = ""
				}
			}
			// Problem messages are prose; compare their identity.
			for i := range got.Problems {
				got.Problems[i].Message = ""
			}
			if !reflect.DeepEqual(normalize(got), normalize(tc.want)) {
				t.Errorf("Diff() =\n%s\nwant\n%s", dump(got), dump(tc.want))
			}
		})
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(p Plan) Plan {
	for _, rs := range []*[]Route{&p.Create, &p.Delete, &p.Adopt, &p.InSync, &p.Pending, &p.Deferred, &p.Withheld} {
		if len(*rs) == 0 {
			*rs = nil
		}
	}
	if len(p.Conflicts) == 0 {
		p.Conflicts = nil
	}
	if len(p.Problems) == 0 {
		p.Problems = nil
	}
	return p
}

func dump(p Plan) string {
	return fmt.Sprintf("create=%v\ndelete=%v\nadopt=%v\ninSync=%v\npending=%v\ndeferred=%v\nwithheld=%v\nconflicts=%v\nproblems=%v\nvalve=%v owned=%d",
		p.Create, p.Delete, p.Adopt, p.InSync, p.Pending, p.Deferred, p.Withheld, p.Conflicts, p.Problems, p.SafetyValveTripped, p.Owned)
}

func TestPolicyOwns(t *testing.T) {
	p := testPolicy()
	v6 := ours("t1", "fd00:10:0:1::/64", "i-a", "a")
	wide := ours("t1", "10.0.0.0/8", "i-a", "a") // contains the cluster CIDR, not inside it
	otherType := ours("t1", "10.0.1.0/24", "eni-1", "a")
	otherType.NextHopType = "NetworkInterface"
	for _, tc := range []struct {
		r    Route
		want bool
	}{
		{ours("t1", "10.0.1.0/24", "i-a", "a"), true},
		{v6, true},
		{wide, false},
		{otherType, false},
		{foreign("t1", "10.0.1.0/24", "i-a", ""), false},
		{foreign("t1", "10.0.1.0/24", "i-a", "c2"), false},
		{ours("t1", "fd00:11::/64", "i-a", "a"), false},
		{ours("t1", "::ffff:10.0.1.0/120", "i-a", "a"), false},
	} {
		if got := p.Owns(tc.r); got != tc.want {
			t.Errorf("Owns(%v owner=%q type=%q) = %v, want %v", tc.r, tc.r.Owner, tc.r.NextHopType, got, tc.want)
		}
	}
	if (Policy{ClusterCIDRs: p.ClusterCIDRs}).Owns(foreign("t1", "10.0.1.0/24", "i-a", "")) {
		t.Error("a policy without cluster ID owns unmarked entries")
	}
}

// genState builds a random but well-formed pair of states: nodes with
// unique pod CIDRs in a random subset of tables, and current entries mixing
// in-sync, stale, wrong-next-hop, foreign, other-cluster and transitional
// entries.
func genState(rng *rand.Rand) (desired, current []Route) {
	tables := []string{"t1", "t2", "t3"}[:1+rng.IntN(3)]
	nodes := rng.IntN(12)
	statuses := []string{StatusAvailable, StatusAvailable, StatusAvailable, StatusPending, StatusModifying, StatusDeleting, ""}
	slot := func(i int) string {
		if rng.IntN(2) == 0 {
			return fmt.Sprintf("10.0.%d.0/24", i)
		}
		return fmt.Sprintf("fd00:10:0:%x::/64", i)
	}
	used := map[Key]bool{}
	add := func(r Route) {
		if !used[r.Key()] {
			used[r.Key()] = true
			current = append(current, r)
		}
	}
	for i := range nodes {
		node, hop, dst := fmt.Sprintf("n%d", i), fmt.Sprintf("i-%d", i), slot(i)
		if rng.IntN(10) == 0 {
			dst = fmt.Sprintf("172.16.%d.0/24", i) // outside the cluster CIDRs
		}
		for _, t := range tables {
			desired = append(desired, want(t, dst, hop, node))
			switch rng.IntN(8) {
			case 0: // missing
			case 1:
				add(withStatus(ours(t, dst, "i-old", node), statuses[rng.IntN(len(statuses))]))
			case 2:
				add(foreign(t, dst, []string{hop, "i-x"}[rng.IntN(2)], []string{"", "c2"}[rng.IntN(2)]))
			default:
				add(withStatus(ours(t, dst, hop, node), statuses[rng.IntN(len(statuses))]))
			}
		}
	}
	// Stale and foreign entries on other slots.
	for i := range rng.IntN(8) {
		t := tables[rng.IntN(len(tables))]
		dst := slot(100 + i)
		switch rng.IntN(3) {
		case 0:
			add(withStatus(ours(t, dst, "i-gone", fmt.Sprintf("gone%d", i)), statuses[rng.IntN(len(statuses))]))
		case 1:
			add(foreign(t, dst, "i-x", ""))
		default:
			add(foreign(t, dst, "i-x", "c2"))
		}
	}
	return desired, current
}

// applyPlan models a cloud executing the plan: deletes, creates (owned and
// Available) and adoptions.
func applyPlan(current []Route, plan Plan, clusterID string) []Route {
	gone := map[string]bool{}
	for _, r := range plan.Delete {
		gone[r.EntryID] = true
	}
	adopted := map[string]string{}
	for _, r := range plan.Adopt {
		adopted[r.EntryID] = r.Node
	}
	var next []Route
	for _, r := range current {
		if gone[r.EntryID] {
			continue
		}
		if n, ok := adopted[r.EntryID]; ok {
			r.Owner, r.Node = clusterID, n
		}
		next = append(next, r)
	}
	for _, r := range plan.Create {
		r.Owner, r.Status, r.EntryID = clusterID, StatusAvailable, "rte-new-"+r.Table+"-"+r.Destination.String()
		next = append(next, r)
	}
	return next
}

func TestDiffProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		desired, current := genState(rng)
		p := testPolicy()
		p.AdoptUnmarked = rng.IntN(2) == 0
		p.MaxDeleteRatio = []float64{0, 0.3, 0.5, 1}[rng.IntN(4)]
		plan := Diff(desired, current, p, Facts{})
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("case %d: %s\ndesired=%v\ncurrent=%v\nplan:\n%s", i, fmt.Sprintf(format, args...), desired, current, dump(plan))
		}

		occupied := map[Key]Route{}
		for _, c := range current {
			occupied[c.Key()] = c
		}
		deleted := map[Key]Route{}
		for _, d := range plan.Delete {
			if !p.Owns(d) {
				fail("foreign entry %v (owner %q) in Delete", d, d.Owner)
			}
			deleted[d.Key()] = d
		}
		for _, a := range plan.Adopt {
			if a.Owner != "" || !p.InClusterCIDR(a.Destination) {
				fail("entry %v of owner %q adopted", a, a.Owner)
			}
		}
		for _, c := range plan.Create {
			if e, ok := occupied[c.Key()]; ok {
				d, freed := deleted[c.Key()]
				if !freed {
					fail("create %v on a slot held by %v that is not deleted", c, e)
				}
				if d.NextHop == c.NextHop {
					fail("slot %v deleted and created with the same next hop %s", c.Key(), c.NextHop)
				}
			}
		}
		// A live node's correct route is never deleted.
		correct := map[Route]bool{}
		for _, d := range desired {
			correct[Route{Table: d.Table, Destination: d.Destination, NextHop: d.NextHop}] = true
		}
		for _, d := range append(plan.Delete, plan.Withheld...) {
			if correct[Route{Table: d.Table, Destination: d.Destination, NextHop: d.NextHop}] {
				fail("correct route %v deleted", d)
			}
		}

		// Applying the plan converges: the next plan writes nothing,
		// unless the valve held deletions back.
		next := Diff(desired, applyPlan(current, plan, p.ClusterID), p, Facts{})
		if len(next.Create) > 0 || len(next.Adopt) > 0 {
			if !plan.SafetyValveTripped {
				fail("second pass still creates %v / adopts %v", next.Create, next.Adopt)
			}
		}
		if len(next.Delete) > 0 && !plan.SafetyValveTripped {
			fail("second pass still deletes %v", next.Delete)
		}
		if !plan.SafetyValveTripped && !next.Empty() {
			fail("second pass not empty:\n%s", dump(next))
		}
	}
}

// nodesNamed returns the set of existing nodes of Facts.
func nodesNamed(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// ownedRange returns owned entries 10.0.<first..first+n-1>.0/24 of nodes
// n<i> on instances i-<i>.
func ownedRange(first, n int) []Route {
	var rs []Route
	for i := first; i < first+n; i++ {
		rs = append(rs, ours("t1", fmt.Sprintf("10.0.%d.0/24", i), fmt.Sprintf("i-%d", i), fmt.Sprintf("n%d", i)))
	}
	return rs
}

func wantedRange(first, n, shift int) []Route {
	var rs []Route
	for i := first; i < first+n; i++ {
		rs = append(rs, want("t1", fmt.Sprintf("10.0.%d.0/24", i+shift), fmt.Sprintf("i-%d", i), fmt.Sprintf("n%d", i)))
	}
	return rs
}

func nodeNames(first, n int) []string {
	var names []string
	for i := first; i < first+n; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	return names
}

// TestDiffValveCauses: each deletion carries its cause, and each cause is
// bounded by its own rule (one pass each, fresh window).
func TestDiffValveCauses(t *testing.T) {
	all := nodeNames(0, 10)
	for _, tc := range []struct {
		name      string
		desired   []Route
		nodes     []string
		released  []string
		wantCause map[string]int // deletions made, by cause
		withheld  int
		tripped   []string
	}{
		{"one node deleted", wantedRange(1, 9, 0), nodeNames(1, 9), nil, map[string]int{CauseNodeDeleted: 1}, 0, []string{}},
		{"most nodes deleted at once", wantedRange(8, 2, 0), nodeNames(8, 2), nil, nil, 8, []string{CauseNodeDeleted}},
		{"pools of existing nodes gone (CRD deleted)", nil, all, nil, nil, 10, []string{CauseNotDesired}},
		{"half the pools gone", wantedRange(5, 5, 0), all, nil, map[string]int{CauseNotDesired: 5}, 0, []string{}},
		{"one instance released", wantedRange(1, 9, 0), all, []string{"i-0"}, map[string]int{CauseInstanceReleased: 1}, 0, []string{}},
		{"most instances released at once", wantedRange(8, 2, 0), all, []string{"i-0", "i-1", "i-2", "i-3", "i-4", "i-5", "i-6", "i-7"}, nil, 8, []string{CauseInstanceReleased}},
		{"a node deleted while the pools of the others vanish", nil, nodeNames(1, 9), nil, map[string]int{CauseNodeDeleted: 1}, 9, []string{CauseNotDesired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Facts{Nodes: nodesNamed(tc.nodes...), Released: nodesNamed(tc.released...), Now: time.Unix(1000, 0)}
			plan := Diff(tc.desired, ownedRange(0, 10), testPolicy(), f)
			got := map[string]int{}
			for _, r := range plan.Delete {
				got[r.Cause]++
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.wantCause) || len(plan.Withheld) != tc.withheld || !reflect.DeepEqual(plan.Valve.Tripped, tc.tripped) {
				t.Errorf("deletions by cause %v, %d withheld, tripped %v; want %v, %d, %v\n%s",
					got, len(plan.Withheld), plan.Valve.Tripped, tc.wantCause, tc.withheld, tc.tripped, dump(plan))
			}
			for _, r := range plan.Withheld {
				if r.Cause == "" {
					t.Errorf("withheld %v has no cause", r)
				}
			}
		})
	}
}

// valveRun drives Diff over passes like the controller does: apply the
// plan, record the pass in the window, move the clock.
type valveRun struct {
	t       *testing.T
	p       Policy
	now     time.Time
	window  ValveWindow
	current []Route
	nodes   map[string]bool
	deleted int // not-desired deletions made in total
}

func (v *valveRun) pass(desired []Route, after time.Duration) Plan {
	v.t.Helper()
	v.now = v.now.Add(after)
	plan := Diff(desired, v.current, v.p, Facts{Nodes: v.nodes, Now: v.now, Window: v.window})
	n := 0
	for _, r := range plan.Delete {
		if r.Cause == CauseNotDesired {
			n++
		}
	}
	v.deleted += n
	v.window = v.window.Record(v.now, plan.Owned, n, v.p.SafetyValveWindow)
	v.current = applyPlan(v.current, plan, v.p.ClusterID)
	return plan
}

func newValveRun(t *testing.T, owned []Route, nodes ...string) *valveRun {
	p := testPolicy()
	p.SafetyValveWindow = 10 * time.Minute
	return &valveRun{t: t, p: p, now: time.Unix(1000, 0), current: owned, nodes: nodesNamed(nodes...)}
}

// TestDiffValveWindowStepwiseShrink: a source shrinking in steps (10, 5,
// 3, 2, 1 nodes) deletes at most half of the 10 entries within a window,
// however many passes it takes; a window later the budget is renewed.
func TestDiffValveWindowStepwiseShrink(t *testing.T) {
	v := newValveRun(t, ownedRange(0, 10), nodeNames(0, 10)...)
	for i, keep := range []int{5, 3, 2, 1} {
		plan := v.pass(wantedRange(10-keep, keep, 0), 30*time.Second)
		t.Logf("step %d (keep %d): deleted %d, withheld %d, remaining %d", i, keep, len(plan.Delete), len(plan.Withheld), plan.Valve.Remaining)
	}
	if v.deleted != 5 {
		t.Errorf("the stepwise shrink deleted %d of 10 entries within the window, want 5 (max delete ratio 0.5)", v.deleted)
	}
	plan := v.pass(wantedRange(9, 1, 0), 10*time.Minute)
	if len(plan.Delete) != 0 || !plan.SafetyValveTripped {
		t.Errorf("a window later, deleting 4 of the 5 left (budget 2) must still trip: deleted %d", len(plan.Delete))
	}
	if plan.Valve.Base != 5 {
		t.Errorf("window base = %d, want the 5 entries owned at its start", plan.Valve.Base)
	}
}

// TestDiffValveWindowMovedDestinations: a source moving every destination
// trips once, and the creates that double the owned count do not let the
// next pass delete the old entries.
func TestDiffValveWindowMovedDestinations(t *testing.T) {
	v := newValveRun(t, ownedRange(0, 10), nodeNames(0, 10)...)
	moved := wantedRange(0, 10, 100)
	first := v.pass(moved, 0)
	if len(first.Create) != 10 || len(first.Delete) != 0 || !first.SafetyValveTripped {
		t.Fatalf("first pass: %d creates, %d deletes, tripped %v; want 10, 0, true", len(first.Create), len(first.Delete), first.SafetyValveTripped)
	}
	for range 5 {
		next := v.pass(moved, time.Second)
		if len(next.Delete) != 0 {
			t.Fatalf("a later pass deleted %d old entries: the creates enlarged the base (%d)", len(next.Delete), next.Valve.Base)
		}
		if next.Valve.Base != 10 || !next.SafetyValveTripped {
			t.Fatalf("window base %d, tripped %v; want 10, true", next.Valve.Base, next.SafetyValveTripped)
		}
	}
}

// TestDiffValveNodesDeletedOneByOne: nodes deleted one at a time, a pass
// each, are never held, even well past the ratio; all at once trips.
func TestDiffValveNodesDeletedOneByOne(t *testing.T) {
	v := newValveRun(t, ownedRange(0, 10), nodeNames(0, 10)...)
	for i := range 10 {
		delete(v.nodes, fmt.Sprintf("n%d", i))
		plan := v.pass(wantedRange(i+1, 9-i, 0), 3*time.Second)
		if len(plan.Delete) != 1 || plan.SafetyValveTripped {
			t.Fatalf("deleting node n%d: %d deletions, tripped %v; want 1, false", i, len(plan.Delete), plan.SafetyValveTripped)
		}
	}
	if len(v.current) != 0 {
		t.Errorf("%d entries left after every node was deleted", len(v.current))
	}

	all := newValveRun(t, ownedRange(0, 10))
	all.nodes = map[string]bool{}
	if plan := all.pass(nil, 0); len(plan.Delete) != 0 || !reflect.DeepEqual(plan.Valve.Tripped, []string{CauseNodeDeleted}) {
		t.Errorf("every node deleted at once: %d deletions, tripped %v; want 0, [%s]", len(plan.Delete), plan.Valve.Tripped, CauseNodeDeleted)
	}
}
