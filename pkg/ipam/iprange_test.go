package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustRanges(t testing.TB, entries ...string) []ipRange {
	t.Helper()
	var out []ipRange
	for _, e := range entries {
		r, err := parseIPRange(e)
		if err != nil {
			t.Fatalf("parseIPRange(%q): %v", e, err)
		}
		out = append(out, r)
	}
	return out
}

func prefixList(t testing.TB, s string) []netip.Prefix {
	t.Helper()
	if s == "" {
		return nil
	}
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		out = append(out, netip.MustParsePrefix(f))
	}
	return out
}

func TestParseIPRange(t *testing.T) {
	tests := []struct {
		in        string
		want      string // rendered range; empty when an error is expected
		wantError string
	}{
		{in: "10.244.0.5", want: "10.244.0.5"},
		{in: "10.244.0.1-10.244.0.253", want: "10.244.0.1-10.244.0.253"},
		{in: "10.244.0.7-10.244.0.7", want: "10.244.0.7"},
		{in: "fd00::1-fd00::ff", want: "fd00::1-fd00::ff"},
		{in: "fd00::5", want: "fd00::5"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{in: "0.0.0.0-255.255.255.255", want: "0.0.0.0-255.255.255.255"},
		{in: "", wantError: "IP range"},
		{in: "10.244.0.9-10.244.0.1", wantError: "starts after it ends"},
		{in: "10.244.0.1-fd00::1", wantError: "mixes IPv4 and IPv6"},
		{in: "10.244.0.0/24", wantError: "CIDR notation"},
		{in: "10.244.0.1-", wantError: "IP range"},
		{in: "-10.244.0.1", wantError: "IP range"},
		{in: "10.244.0.1-10.244.0.2-10.244.0.3", wantError: "IP range"},
		{in: "fe80::1%eth0", wantError: "zone"},
		{in: " 10.244.0.1", wantError: "IP range"},
		{in: "10.244.0.01", wantError: "IP range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := parseIPRange(tt.in)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("parseIPRange(%q) = %v, %v; want error containing %q", tt.in, r, err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseIPRange(%q): %v", tt.in, err)
			}
			if got := r.String(); got != tt.want {
				t.Errorf("parseIPRange(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestPoolPrefixMath(t *testing.T) {
	tests := []struct {
		name      string
		ips       []string
		exclude   []string
		wantCover string
		wantExact string
	}{
		{
			name:      "Spiderpool's usual range",
			ips:       []string{"10.244.0.1-10.244.0.253"},
			wantCover: "10.244.0.0/24",
			wantExact: "10.244.0.1/32,10.244.0.2/31,10.244.0.4/30,10.244.0.8/29,10.244.0.16/28,10.244.0.32/27,10.244.0.64/26,10.244.0.128/26,10.244.0.192/27,10.244.0.224/28,10.244.0.240/29,10.244.0.248/30,10.244.0.252/31",
		},
		{
			name:      "aligned full block",
			ips:       []string{"10.244.1.0-10.244.1.255"},
			wantCover: "10.244.1.0/24",
			wantExact: "10.244.1.0/24",
		},
		{
			name:      "single IPv4 address is a /32",
			ips:       []string{"10.244.2.9"},
			wantCover: "10.244.2.9/32",
			wantExact: "10.244.2.9/32",
		},
		{
			name:      "single IPv6 address is a /128",
			ips:       []string{"fd00:10:244::9"},
			wantCover: "fd00:10:244::9/128",
			wantExact: "fd00:10:244::9/128",
		},
		{
			name:      "IPv6 range",
			ips:       []string{"fd00:10:244:1::-fd00:10:244:1::ffff"},
			wantCover: "fd00:10:244:1::/112",
			wantExact: "fd00:10:244:1::/112",
		},
		{
			name:      "IPv6 unaligned range",
			ips:       []string{"fd00::1-fd00::6"},
			wantCover: "fd00::/125",
			wantExact: "fd00::1/128,fd00::2/127,fd00::4/127,fd00::6/128",
		},
		{
			name:      "excludeIPs splits a range in two",
			ips:       []string{"10.244.3.0-10.244.3.255"},
			exclude:   []string{"10.244.3.128-10.244.3.131"},
			wantCover: "10.244.3.0/24",
			wantExact: "10.244.3.0/25,10.244.3.132/30,10.244.3.136/29,10.244.3.144/28,10.244.3.160/27,10.244.3.192/26",
		},
		{
			name:      "excludeIPs trims the ends",
			ips:       []string{"10.244.4.0-10.244.4.255"},
			exclude:   []string{"10.244.4.0", "10.244.4.128-10.244.4.255"},
			wantCover: "10.244.4.0/25",
			wantExact: "10.244.4.1/32,10.244.4.2/31,10.244.4.4/30,10.244.4.8/29,10.244.4.16/28,10.244.4.32/27,10.244.4.64/26",
		},
		{
			name:      "overlapping and adjacent entries merge",
			ips:       []string{"10.244.5.0-10.244.5.100", "10.244.5.50-10.244.5.127", "10.244.5.128-10.244.5.255"},
			wantCover: "10.244.5.0/24",
			wantExact: "10.244.5.0/24",
		},
		{
			name:      "several separate single addresses",
			ips:       []string{"10.244.6.10", "10.244.6.3"},
			wantCover: "10.244.6.0/28",
			wantExact: "10.244.6.3/32,10.244.6.10/32",
		},
		{
			name:      "the whole IPv4 space",
			ips:       []string{"0.0.0.0-255.255.255.255"},
			wantCover: "0.0.0.0/0",
			wantExact: "0.0.0.0/0",
		},
		{
			name:      "the whole IPv6 space",
			ips:       []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			wantCover: "::/0",
			wantExact: "::/0",
		},
		{
			name:      "top of the IPv4 space",
			ips:       []string{"255.255.255.254-255.255.255.255"},
			wantCover: "255.255.255.254/31",
			wantExact: "255.255.255.254/31",
		},
		{
			name:      "top of the IPv6 space, excluding the last address",
			ips:       []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			exclude:   []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			wantCover: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124",
			wantExact: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/125,ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff8/126,ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/127,ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
		},
		{
			name:      "everything excluded",
			ips:       []string{"10.244.7.1-10.244.7.2"},
			exclude:   []string{"10.244.7.0-10.244.7.3"},
			wantExact: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ranges := subtractRanges(mustRanges(t, tt.ips...), mustRanges(t, tt.exclude...))
			gotExact := rangePrefixes(ranges)
			if want := prefixList(t, tt.wantExact); !slices.Equal(gotExact, want) {
				t.Errorf("exact prefixes = %s\nwant             %s", joinPrefixes(gotExact), joinPrefixes(want))
			}
			if len(ranges) == 0 {
				return
			}
			if got, want := coveringPrefix(ranges), netip.MustParsePrefix(tt.wantCover); got != want {
				t.Errorf("covering prefix = %s, want %s", got, want)
			}
		})
	}
}

// TestExactPrefixesCoverExactly checks, address by address on small ranges,
// that the exact prefixes cover the range and nothing else, without overlap.
func TestExactPrefixesCoverExactly(t *testing.T) {
	base := netip.MustParseAddr("10.0.0.0")
	for first := 0; first < 40; first++ {
		for last := first; last < 40; last++ {
			r := ipRange{first: addrPlus(base, first), last: addrPlus(base, last)}
			ps := exactPrefixes(r)
			for i := -2; i < 44; i++ {
				a := addrPlus(base, i)
				n := 0
				for _, p := range ps {
					if p.Contains(a) {
						n++
					}
				}
				want := 0
				if i >= first && i <= last {
					want = 1
				}
				if n != want {
					t.Fatalf("range %s: address %s is covered by %d of %s, want %d", r, a, n, joinPrefixes(ps), want)
				}
			}
			for _, p := range ps {
				if p != p.Masked() {
					t.Fatalf("range %s: prefix %s is not masked", r, p)
				}
			}
		}
	}
}

func addrPlus(a netip.Addr, n int) netip.Addr {
	for ; n > 0; n-- {
		a = a.Next()
	}
	for ; n < 0; n++ {
		a = a.Prev()
	}
	return a
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.0.0/24":  "10.244.0.255",
		"10.244.0.0/23":  "10.244.1.255",
		"10.244.0.5/32":  "10.244.0.5",
		"0.0.0.0/0":      "255.255.255.255",
		"10.244.0.17/28": "10.244.0.31",
		"fd00::/64":      "fd00::ffff:ffff:ffff:ffff",
		"fd00::/127":     "fd00::1",
		"fd00::1/128":    "fd00::1",
	} {
		if got := lastAddr(netip.MustParsePrefix(in)); got != netip.MustParseAddr(want) {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParseIPRange(f *testing.F) {
	for _, seed := range []string{
		"10.244.0.1-10.244.0.253", "10.244.0.5", "fd00::1-fd00::ff", "::ffff:1.2.3.4",
		"0.0.0.0-255.255.255.255", "10.0.0.9-10.0.0.1", "1.2.3.4-::1", "fe80::1%eth0", "10.0.0.0/8", "-", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseIPRange(s)
		if err != nil {
			return
		}
		if !r.first.IsValid() || !r.last.IsValid() {
			t.Fatalf("parseIPRange(%q) = %v with an invalid address", s, r)
		}
		if r.first.Is4() != r.last.Is4() || r.first.Compare(r.last) > 0 {
			t.Fatalf("parseIPRange(%q) = %v: mixed families or reversed", s, r)
		}
		back, err := parseIPRange(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, r, r.String(), back, err)
		}
		ps := exactPrefixes(r)
		if first := ps[0].Masked().Addr(); first != r.first {
			t.Fatalf("exact prefixes of %v start at %s", r, first)
		}
		if last := lastAddr(ps[len(ps)-1]); last != r.last {
			t.Fatalf("exact prefixes of %v end at %s", r, last)
		}
		for i := 1; i < len(ps); i++ {
			if lastAddr(ps[i-1]).Next() != ps[i].Addr() {
				t.Fatalf("exact prefixes of %v are not contiguous: %s", r, joinPrefixes(ps))
			}
		}
		if c := coveringPrefix([]ipRange{r}); !c.Contains(r.first) || !c.Contains(r.last) {
			t.Fatalf("covering prefix %s of %v misses an end", c, r)
		}
	})
}
