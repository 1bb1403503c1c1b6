package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ipRange is an inclusive range of addresses of one family, as written in a
// SpiderIPPool's spec.ips and spec.excludeIPs.
type ipRange struct {
	first, last netip.Addr
}

// String renders the range the way Spiderpool writes it: a single address
// when first == last, "first-last" otherwise.
func (r ipRange) String() string {
	if r.first == r.last {
		return r.first.String()
	}
	return r.first.String() + "-" + r.last.String()
}

// contains reports whether every address of o lies in r.
func (r ipRange) contains(o ipRange) bool {
	return r.first.Compare(o.first) <= 0 && o.last.Compare(r.last) <= 0
}

// overlaps reports whether r and o share at least one address.
func (r ipRange) overlaps(o ipRange) bool {
	return r.first.Compare(o.last) <= 0 && o.first.Compare(r.last) <= 0
}

// parseIPRange parses one Spiderpool IP entry: a single address
// ("10.244.0.5", "fd00::5") or an inclusive range ("10.244.0.1-10.244.0.253").
// Both ends must be of the same family and in order. IPv4-mapped IPv6
// addresses are read as IPv4, as Spiderpool's own parser does; zones and
// CIDR notation are rejected.
func parseIPRange(s string) (ipRange, error) {
	firstText, lastText, isRange := strings.Cut(s, "-")
	first, err := parseRangeAddr(firstText)
	if err != nil {
		return ipRange{}, fmt.Errorf("IP range %q: %w", s, err)
	}
	if !isRange {
		return ipRange{first: first, last: first}, nil
	}
	last, err := parseRangeAddr(lastText)
	if err != nil {
		return ipRange{}, fmt.Errorf("IP range %q: %w", s, err)
	}
	if first.Is4() != last.Is4() {
		return ipRange{}, fmt.Errorf("IP range %q mixes IPv4 and IPv6", s)
	}
	if first.Compare(last) > 0 {
		return ipRange{}, fmt.Errorf("IP range %q starts after it ends", s)
	}
	return ipRange{first: first, last: last}, nil
}

func parseRangeAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		return netip.Addr{}, errors.New("CIDR notation is not an IP range")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone", s)
	}
	return a.Unmap(), nil
}

// normalizeRanges sorts the ranges and merges overlapping and adjacent ones,
// so that the result is the shortest list describing the same addresses.
// The input is not modified.
func normalizeRanges(rs []ipRange) []ipRange {
	if len(rs) == 0 {
		return nil
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b ipRange) int { return a.first.Compare(b.first) })
	out := sorted[:1]
	for _, r := range sorted[1:] {
		cur := &out[len(out)-1]
		// Merge when r starts at or before the address following cur.
		if next := cur.last.Next(); r.first.Is4() == cur.last.Is4() &&
			(r.first.Compare(cur.last) <= 0 || (next.IsValid() && r.first == next)) {
			if r.last.Compare(cur.last) > 0 {
				cur.last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtractRanges returns the addresses of include that are in no range of
// exclude, normalized.
func subtractRanges(include, exclude []ipRange) []ipRange {
	include = normalizeRanges(include)
	exclude = normalizeRanges(exclude)
	var out []ipRange
	for _, in := range include {
		rest := []ipRange{in}
		for _, ex := range exclude {
			var next []ipRange
			for _, r := range rest {
				next = append(next, cutRange(r, ex)...)
			}
			rest = next
		}
		out = append(out, rest...)
	}
	return normalizeRanges(out)
}

// cutRange returns r without the addresses of ex: zero, one or two ranges.
func cutRange(r, ex ipRange) []ipRange {
	if r.first.Is4() != ex.first.Is4() || !r.overlaps(ex) {
		return []ipRange{r}
	}
	var out []ipRange
	if r.first.Compare(ex.first) < 0 {
		out = append(out, ipRange{first: r.first, last: ex.first.Prev()})
	}
	if ex.last.Compare(r.last) < 0 {
		out = append(out, ipRange{first: ex.last.Next(), last: r.last})
	}
	return out
}

// coveringPrefix returns the smallest single prefix that contains every
// address of the ranges, which must be non-empty and of one family.
func coveringPrefix(rs []ipRange) netip.Prefix {
	lo, hi := rs[0].first, rs[0].last
	for _, r := range rs[1:] {
		if r.first.Compare(lo) < 0 {
			lo = r.first
		}
		if r.last.Compare(hi) > 0 {
			hi = r.last
		}
	}
	for bits := lo.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(lo, bits).Masked()
		if p.Contains(hi) {
			return p
		}
	}
	// Unreachable: the /0 prefix of the family contains every address.
	return netip.PrefixFrom(lo, 0).Masked()
}

// rangePrefixes returns the minimal list of prefixes whose union is exactly
// the addresses of the (normalized) ranges, in address order.
func rangePrefixes(rs []ipRange) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range rs {
		out = append(out, exactPrefixes(r)...)
	}
	return out
}

// exactPrefixes splits one range into the fewest CIDR blocks: at each step it
// takes the largest block that starts at the current address (is aligned on
// it) and does not run past the end of the range.
func exactPrefixes(r ipRange) []netip.Prefix {
	var out []netip.Prefix
	cur := r.first
	for {
		p := largestBlock(cur, r.last)
		out = append(out, p)
		end := lastAddr(p)
		if end.Compare(r.last) >= 0 {
			return out
		}
		cur = end.Next()
	}
}

func largestBlock(start, limit netip.Addr) netip.Prefix {
	for bits := 0; bits < start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() == start && lastAddr(p).Compare(limit) <= 0 {
			return p
		}
	}
	return netip.PrefixFrom(start, start.BitLen())
}

// lastAddr returns the highest address of the prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		switch {
		case bits >= (i+1)*8:
			// Network byte: unchanged.
		case bits <= i*8:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - i*8)
		}
	}
}

// prefixRange returns the addresses of a prefix as a range.
func prefixRange(p netip.Prefix) ipRange {
	return ipRange{first: p.Masked().Addr(), last: lastAddr(p)}
}

// prefixContains reports whether every address of inner lies in outer.
func prefixContains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}
