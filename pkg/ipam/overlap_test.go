package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// linearFirstOverlap is the obvious definition overlapIndex must agree with.
func linearFirstOverlap(taken []claim, c claim) (claim, bool) {
	for _, t := range taken {
		if t.node != c.node && t.dest.Overlaps(c.dest) {
			return t, true
		}
	}
	return claim{}, false
}

func randomClaim(r *rand.Rand, i int) claim {
	node := fmt.Sprintf("node-%d", r.IntN(12))
	if r.IntN(4) == 0 {
		a := [16]byte{0xfd, 0, 0, byte(r.IntN(4))}
		return claim{object: "Node/" + node, node: node, dest: netip.PrefixFrom(netip.AddrFrom16(a), 60+r.IntN(9)).Masked()}
	}
	a := [4]byte{10, 244, byte(r.IntN(8)), byte(r.IntN(256))}
	return claim{object: fmt.Sprintf("Pool/p-%d", i), node: node, dest: netip.PrefixFrom(netip.AddrFrom4(a), 20+r.IntN(9)).Masked()}
}

// The index answers exactly as a scan of every taken claim in order would,
// holder included, across overlapping, nested, equal and same-node claims of
// both families.
func TestOverlapIndexAgreesWithLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		index := newOverlapIndex(0)
		for i := range 60 {
			c := randomClaim(r, i)
			want, wantOK := linearFirstOverlap(index.taken, c)
			got, gotOK := index.firstOverlap(c)
			if gotOK != wantOK || got != want {
				t.Fatalf("round %d claim %d %v: index says (%v, %v), scan says (%v, %v)", round, i, c, got, gotOK, want, wantOK)
			}
			if !gotOK {
				index.take(c)
			}
		}
	}
}

// BenchmarkResolve5000Nodes measures overlap resolution of one pass over
// 5000 nodes' pod CIDRs, the Kubernetes scale limit.
func BenchmarkResolve5000Nodes(b *testing.B) {
	claims := make([]claim, 5000)
	for i := range claims {
		node := fmt.Sprintf("cn-chengdu.i-%06d", i)
		claims[i] = claim{object: "Node/" + node, node: node,
			dest: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)}
	}
	b.ReportAllocs()
	for b.Loop() {
		resolve(append([]claim(nil), claims...))
	}
}
