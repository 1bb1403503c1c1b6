package alisim

import (
	"fmt"
	"net/netip"
	"time"
)

// Entry types and next hop types as the VPC API reports them.
const (
	EntryTypeSystem = "System"
	EntryTypeCustom = "Custom"

	NextHopInstance    = "Instance"
	NextHopLocal       = "local"
	NextHopService     = "service"
	NextHopIPv6Gateway = "IPv6Gateway"

	StatusPending   = "Pending"
	StatusAvailable = "Available"
	StatusModifying = "Modifying"
	StatusDeleting  = "Deleting"

	InstanceRunning = "Running"
	InstanceStopped = "Stopped"

	TableTypeSystem = "System"
	TableTypeCustom = "Custom"
)

// DefaultQuota is the number of custom entries a route table accepts unless
// its Quota says otherwise (Alibaba's default per-table quota).
const DefaultQuota = 200

// State is the whole simulated account: what the admin API dumps and loads
// and what --state reads. Zero values are filled with defaults on load.
type State struct {
	Region string `json:"region"`
	// AccountID is the account of every ARN (RAM policy resources); empty
	// means DefaultAccountID.
	AccountID     string         `json:"accountId,omitempty"`
	VPCs          []VPC          `json:"vpcs"`
	VSwitches     []VSwitch      `json:"vswitches"`
	RouteTables   []RouteTable   `json:"routeTables"`
	Entries       []RouteEntry   `json:"entries"`
	Instances     []Instance     `json:"instances"`
	AccessKeys    []AccessKey    `json:"accessKeys,omitempty"`
	OIDCProviders []OIDCProvider `json:"oidcProviders,omitempty"`
	Roles         []Role         `json:"roles,omitempty"`

	// NetworkInterfaces are the ENIs of the account. Every instance has a
	// primary ENI; one missing from the state is created on load.
	NetworkInterfaces []NetworkInterface `json:"networkInterfaces,omitempty"`
}

// VPC is a virtual private cloud.
type VPC struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	CIDR      netip.Prefix `json:"cidr"`
	IPv6CIDR  netip.Prefix `json:"ipv6Cidr,omitzero"`
	VRouterID string       `json:"vRouterId"`
	// IPv6GatewayID is the VPC's IPv6 gateway; when set, the system table
	// holds the custom route ::/0 to it, as Alibaba adds on creating the
	// gateway.
	IPv6GatewayID string `json:"ipv6GatewayId,omitempty"`
}

// VSwitch is a subnet of a VPC in one zone, bound to one route table.
type VSwitch struct {
	ID           string       `json:"id"`
	VPCID        string       `json:"vpcId"`
	Zone         string       `json:"zone"`
	CIDR         netip.Prefix `json:"cidr"`
	IPv6CIDR     netip.Prefix `json:"ipv6Cidr,omitzero"`
	RouteTableID string       `json:"routeTableId,omitempty"`
}

// RouteTable is the system table of a VPC router or a custom table.
type RouteTable struct {
	ID    string `json:"id"`
	VPCID string `json:"vpcId"`
	Name  string `json:"name,omitempty"`
	Type  string `json:"type"`
	// Quota is the maximum number of custom entries; 0 means DefaultQuota.
	Quota int `json:"quota,omitempty"`
}

// RouteEntry is one entry of a route table.
type RouteEntry struct {
	ID          string       `json:"id"`
	TableID     string       `json:"tableId"`
	Destination netip.Prefix `json:"destination"`
	Type        string       `json:"type"`
	NextHopType string       `json:"nextHopType"`
	NextHopID   string       `json:"nextHopId,omitempty"`
	Name        string       `json:"name,omitempty"`
	Description string       `json:"description,omitempty"`
	Status      string       `json:"status"`
	// Until is when the current transitional status (Pending, Modifying,
	// Deleting) ends; zero for stable entries.
	Until time.Time `json:"until,omitzero"`
	// Created is the creation time reported as GmtModified until modified.
	Created time.Time `json:"created,omitzero"`
}

// Instance is an ECS instance attached to a vSwitch.
type Instance struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	VSwitchID string     `json:"vswitchId"`
	VPCID     string     `json:"vpcId"`
	Zone      string     `json:"zone"`
	PrivateIP netip.Addr `json:"privateIp"`
	// IPv6 are the IPv6 addresses of the primary network interface; an
	// IPv6 route may point only at an instance that has one.
	IPv6   []netip.Addr `json:"ipv6,omitempty"`
	Status string       `json:"status"`

	// Created is when the instance was created; zero means long ago
	// (before the source/destination check became a default).
	Created time.Time `json:"created,omitzero"`
}

// AccessKey is a permanent RAM access key and what it may call.
type AccessKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	// AllowedActions lists permitted actions as "Action", "product:Action",
	// "product:Describe*", "product:*" or "*"; empty means every action.
	AllowedActions []string `json:"allowedActions,omitempty"`
	Disabled       bool     `json:"disabled,omitempty"`
	// Policy is the RAM policy attached to the key; nil means every action
	// AllowedActions permits. See ram.go for what is enforced.
	Policy *Policy `json:"policy,omitempty"`
}

// OIDCProvider is a RAM OIDC identity provider (RRSA).
type OIDCProvider struct {
	ARN       string   `json:"arn"`
	IssuerURL string   `json:"issuerUrl"`
	ClientIDs []string `json:"clientIds"`
}

// Role is a RAM role that OIDC identities and ECS instances may assume.
type Role struct {
	ARN  string `json:"arn"`
	Name string `json:"name"`
	// TrustedProviders are the OIDC provider ARNs allowed to assume the role.
	TrustedProviders []string `json:"trustedProviders,omitempty"`
	AllowedActions   []string `json:"allowedActions,omitempty"`
	// Policy is the RAM policy attached to the role; the STS credentials
	// issued for it carry it. nil means every action AllowedActions permits.
	Policy *Policy `json:"policy,omitempty"`
	// MaxSessionSeconds bounds DurationSeconds; 0 means 3600.
	MaxSessionSeconds int `json:"maxSessionSeconds,omitempty"`
}

// Default identifiers of DefaultState.
const (
	DefaultRegion     = "cn-chengdu"
	DefaultAccountID  = "1000000000000001"
	DefaultZone       = "cn-chengdu-a"
	DefaultVPCID      = "vpc-2vc0000000000000001"
	DefaultVRouterID  = "vrt-2vc0000000000000001"
	DefaultVSwitchID  = "vsw-2vc0000000000000001"
	DefaultTableID    = "vtb-2vc0000000000000001"
	DefaultRoleName   = "vpc-route-publisher"
	DefaultOIDCIssuer = "https://oidc-ack.cn-chengdu.example.invalid/cluster"
)

// DefaultRoleARN is the ARN of the role of DefaultState.
const DefaultRoleARN = "acs:ram::" + DefaultAccountID + ":role/" + DefaultRoleName

// DefaultOIDCProviderARN is the OIDC provider of DefaultState.
const DefaultOIDCProviderARN = "acs:ram::" + DefaultAccountID + ":oidc-provider/ack-rrsa-cluster"

// DefaultState is the documented starting point: region cn-chengdu, one VPC
// 192.168.0.0/16 (with an IPv6 /56), one vSwitch 192.168.0.0/24 bound to the
// VPC's system route table, and three Running instances i-2vcxxr, i-2vcxxs
// and i-2vcxxt. The role vpc-route-publisher trusts the OIDC provider of
// DefaultOIDCProviderARN (issuer DefaultOIDCIssuer, client ID "sts.aliyuncs.com").
func DefaultState() *State {
	return &State{
		Region: DefaultRegion,
		VPCs: []VPC{{
			ID: DefaultVPCID, Name: "default", VRouterID: DefaultVRouterID,
			CIDR:     netip.MustParsePrefix("192.168.0.0/16"),
			IPv6CIDR: netip.MustParsePrefix("2408:4005:3a0:1000::/56"),
		}},
		VSwitches: []VSwitch{{
			ID: DefaultVSwitchID, VPCID: DefaultVPCID, Zone: DefaultZone,
			CIDR:         netip.MustParsePrefix("192.168.0.0/24"),
			IPv6CIDR:     netip.MustParsePrefix("2408:4005:3a0:1000::/64"),
			RouteTableID: DefaultTableID,
		}},
		RouteTables: []RouteTable{{ID: DefaultTableID, VPCID: DefaultVPCID, Type: TableTypeSystem}},
		Instances: []Instance{
			{ID: "i-2vcxxr", VSwitchID: DefaultVSwitchID, VPCID: DefaultVPCID, Zone: DefaultZone, PrivateIP: netip.MustParseAddr("192.168.0.10"), IPv6: []netip.Addr{netip.MustParseAddr("2408:4005:3a0:1000::10")}, Status: InstanceRunning},
			{ID: "i-2vcxxs", VSwitchID: DefaultVSwitchID, VPCID: DefaultVPCID, Zone: DefaultZone, PrivateIP: netip.MustParseAddr("192.168.0.11"), IPv6: []netip.Addr{netip.MustParseAddr("2408:4005:3a0:1000::11")}, Status: InstanceRunning},
			{ID: "i-2vcxxt", VSwitchID: DefaultVSwitchID, VPCID: DefaultVPCID, Zone: DefaultZone, PrivateIP: netip.MustParseAddr("192.168.0.12"), IPv6: []netip.Addr{netip.MustParseAddr("2408:4005:3a0:1000::12")}, Status: InstanceRunning},
		},
		OIDCProviders: []OIDCProvider{{ARN: DefaultOIDCProviderARN, IssuerURL: DefaultOIDCIssuer, ClientIDs: []string{"sts.aliyuncs.com"}}},
		Roles: []Role{{
			ARN: DefaultRoleARN, Name: DefaultRoleName,
			TrustedProviders: []string{DefaultOIDCProviderARN},
			AllowedActions:   []string{"vpc:*", "ecs:DescribeInstances", "ecs:DescribeNetworkInterfaces", "ecs:ModifyNetworkInterfaceAttribute"},
		}},
	}
}

// validate checks the referential integrity of a state.
func (s *State) validate() error {
	vpcs := map[string]bool{}
	for _, v := range s.VPCs {
		if v.ID == "" || !v.CIDR.IsValid() {
			return fmt.Errorf("vpc %q: id and cidr are required", v.ID)
		}
		vpcs[v.ID] = true
	}
	tables := map[string]bool{}
	perVPC := map[string]int{}
	for _, t := range s.RouteTables {
		if !vpcs[t.VPCID] {
			return fmt.Errorf("route table %s: unknown vpc %q", t.ID, t.VPCID)
		}
		if perVPC[t.VPCID]++; perVPC[t.VPCID] > MaxRouteTablesPerVPC {
			return fmt.Errorf("vpc %s has more than %d route tables", t.VPCID, MaxRouteTablesPerVPC)
		}
		if t.Type != TableTypeSystem && t.Type != TableTypeCustom {
			return fmt.Errorf("route table %s: type %q is neither System nor Custom", t.ID, t.Type)
		}
		tables[t.ID] = true
	}
	vsws := map[string]bool{}
	for _, w := range s.VSwitches {
		if !vpcs[w.VPCID] {
			return fmt.Errorf("vswitch %s: unknown vpc %q", w.ID, w.VPCID)
		}
		if !w.CIDR.IsValid() {
			return fmt.Errorf("vswitch %s: cidr is required", w.ID)
		}
		if w.RouteTableID != "" && !tables[w.RouteTableID] {
			return fmt.Errorf("vswitch %s: unknown route table %q", w.ID, w.RouteTableID)
		}
		vsws[w.ID] = true
	}
	for _, e := range s.Entries {
		if !tables[e.TableID] {
			return fmt.Errorf("route entry %s: unknown route table %q", e.ID, e.TableID)
		}
		if !e.Destination.IsValid() {
			return fmt.Errorf("route entry %s: destination is required", e.ID)
		}
	}
	for _, k := range s.AccessKeys {
		if k.Policy != nil {
			if err := k.Policy.Validate(); err != nil {
				return fmt.Errorf("access key %s: %w", k.ID, err)
			}
		}
	}
	for _, r := range s.Roles {
		if r.Policy != nil {
			if err := r.Policy.Validate(); err != nil {
				return fmt.Errorf("role %s: %w", r.ARN, err)
			}
		}
	}
	for _, in := range s.Instances {
		if !vsws[in.VSwitchID] {
			return fmt.Errorf("instance %s: unknown vswitch %q", in.ID, in.VSwitchID)
		}
	}
	return nil
}
