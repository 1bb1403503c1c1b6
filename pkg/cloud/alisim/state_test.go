package alisim_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := alisim.New(alisim.Options{AccessKeyID: "id-only"}); err == nil {
		t.Fatal("an access key ID without secret was accepted")
	}
	for name, mutate := range map[string]func(*alisim.State){
		"table of an unknown VPC":   func(s *alisim.State) { s.RouteTables[0].VPCID = "vpc-none" },
		"table of an unknown type":  func(s *alisim.State) { s.RouteTables[0].Type = "Gateway" },
		"vSwitch of an unknown VPC": func(s *alisim.State) { s.VSwitches[0].VPCID = "vpc-none" },
		"vSwitch without CIDR":      func(s *alisim.State) { s.VSwitches[0].CIDR = netip.Prefix{} },
		"vSwitch of an unknown table": func(s *alisim.State) {
			s.VSwitches[0].RouteTableID = "vtb-none"
		},
		"entry of an unknown table": func(s *alisim.State) {
			s.Entries = append(s.Entries, alisim.RouteEntry{TableID: "vtb-none", Destination: netip.MustParsePrefix("10.0.0.0/24")})
		},
		"entry without destination": func(s *alisim.State) {
			s.Entries = append(s.Entries, alisim.RouteEntry{TableID: alisim.DefaultTableID})
		},
		"instance of an unknown vSwitch": func(s *alisim.State) { s.Instances[0].VSwitchID = "vsw-none" },
		"VPC without CIDR":               func(s *alisim.State) { s.VPCs[0].CIDR = netip.Prefix{} },
	} {
		t.Run(name, func(t *testing.T) {
			st := alisim.DefaultState()
			mutate(st)
			if _, err := alisim.New(alisim.Options{State: st}); !errors.Is(err, alisim.ErrInvalid) {
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestStateRoundTripAddsSystemPieces(t *testing.T) {
	// A minimal state: a VPC and a vSwitch, no table.
	st := &alisim.State{
		VPCs:      []alisim.VPC{{ID: "vpc-a", CIDR: netip.MustParsePrefix("10.0.0.0/8")}},
		VSwitches: []alisim.VSwitch{{ID: "vsw-a", VPCID: "vpc-a", CIDR: netip.MustParsePrefix("10.1.0.0/16")}},
	}
	sim, err := alisim.New(alisim.Options{State: st})
	if err != nil {
		t.Fatal(err)
	}
	got := sim.State()
	if got.Region != alisim.DefaultRegion || len(got.RouteTables) != 1 || got.RouteTables[0].Type != alisim.TableTypeSystem ||
		got.VSwitches[0].RouteTableID != got.RouteTables[0].ID || got.VPCs[0].VRouterID == "" {
		t.Fatalf("completed state = %+v", got)
	}
	if len(got.Entries) != 2 {
		t.Fatalf("system entries = %+v, want the vSwitch and cloud service routes", got.Entries)
	}
	// Loading the dump again is a fixed point.
	if err := sim.LoadState(got); err != nil {
		t.Fatal(err)
	}
	again := sim.State()
	if len(again.Entries) != 2 || again.Entries[0].ID != got.Entries[0].ID || again.RouteTables[0].ID != got.RouteTables[0].ID {
		t.Fatalf("reloaded state differs: %+v vs %+v", again, got)
	}
}
