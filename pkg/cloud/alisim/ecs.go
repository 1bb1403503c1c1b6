package alisim

import (
	"encoding/json"
	"net/netip"
	"strings"
)

const (
	maxInstancePage = 100
	maxInstanceIDs  = 100
)

type ipv6SetJSON struct {
	Ipv6Address string `json:"Ipv6Address"`
}

// ipv6Sets lists an instance's IPv6 addresses as DescribeInstances reports
// them on the primary network interface (services/ecs Ipv6Set).
func ipv6Sets(addrs []netip.Addr) []ipv6SetJSON {
	out := []ipv6SetJSON{}
	for _, a := range addrs {
		out = append(out, ipv6SetJSON{Ipv6Address: a.String()})
	}
	return out
}

var instanceStatuses = map[string]bool{"Pending": true, "Running": true, "Starting": true, "Stopping": true, "Stopped": true}

func (s *Simulator) describeInstances(c *call) (any, *apiError) {
	page, size, aerr := parsePage(c, maxInstancePage)
	if aerr != nil {
		return nil, aerr
	}
	var ids map[string]bool
	if raw := c.get("InstanceIds"); raw != "" {
		var list []string
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return nil, errorf(CodeInvalidInstanceIDs, "InstanceIds must be a JSON array of strings.")
		}
		if len(list) > maxInstanceIDs {
			return nil, errorf(CodeInvalidParameter, "InstanceIds accepts at most %d IDs.", maxInstanceIDs)
		}
		ids = map[string]bool{}
		for _, id := range list {
			ids[id] = true
		}
	}
	// PrivateIpAddresses is documented as valid only together with
	// InstanceNetworkType=vpc; without it ECS ignores the filter (and
	// answers every instance the other filters let through).
	var ips map[netip.Addr]bool
	if raw := c.get("PrivateIpAddresses"); raw != "" && strings.EqualFold(c.get("InstanceNetworkType"), "vpc") {
		var list []string
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return nil, errorf(CodeInvalidParameter, "PrivateIpAddresses must be a JSON array of strings.")
		}
		if len(list) > maxInstanceIDs {
			return nil, errorf(CodeInvalidParameter, "PrivateIpAddresses accepts at most %d addresses.", maxInstanceIDs)
		}
		ips = map[netip.Addr]bool{}
		for _, s := range list {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, errorf(CodeInvalidParameter, "PrivateIpAddresses contains %q, not an IP address.", s)
			}
			ips[a] = true
		}
	}
	// NextToken/MaxResults paging, when asked for, replaces page numbers.
	tokenMode := c.params.Has("NextToken") || c.params.Has("MaxResults")
	maxResults, aerr := parseInt(c, "MaxResults", 10, 1, maxInstancePage)
	if aerr != nil {
		return nil, aerr
	}
	from, aerr := parseNextToken(c, "i")
	if aerr != nil {
		return nil, aerr
	}
	if st := c.get("Status"); st != "" && !instanceStatuses[st] {
		return nil, errorf(CodeInvalidStatus, "Status %q is not supported.", st)
	}
	type instanceJSON struct {
		InstanceID          string `json:"InstanceId"`
		InstanceName        string `json:"InstanceName"`
		HostName            string `json:"HostName"`
		RegionID            string `json:"RegionId"`
		ZoneID              string `json:"ZoneId"`
		Status              string `json:"Status"`
		InstanceType        string `json:"InstanceType"`
		InstanceNetworkType string `json:"InstanceNetworkType"`
		OSType              string `json:"OSType"`
		CreationTime        string `json:"CreationTime"`
		VpcAttributes       struct {
			VpcID            string `json:"VpcId"`
			VSwitchID        string `json:"VSwitchId"`
			NatIPAddress     string `json:"NatIpAddress"`
			PrivateIPAddress struct {
				IPAddress []string `json:"IpAddress"`
			} `json:"PrivateIpAddress"`
		} `json:"VpcAttributes"`
		// NetworkInterfaces lists the attached ENIs with their type; the
		// Alibaba CCM takes the Primary one from here.
		NetworkInterfaces struct {
			NetworkInterface []instanceENIJSON `json:"NetworkInterface"`
		} `json:"NetworkInterfaces"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []instanceJSON
	enis := s.instanceENIsLocked()
	for _, id := range sortedKeys(s.st.instances) {
		if c.denied {
			// A key without ecs:DescribeInstances sees no instance at
			// all: HTTP 200 and an empty list (see authorize).
			break
		}
		in := s.st.instances[id]
		if (ids != nil && !ids[id]) || (ips != nil && !ips[in.PrivateIP]) || (from != "" && id < from) ||
			(c.has("VpcId") && c.get("VpcId") != in.VPCID) || (c.has("VSwitchId") && c.get("VSwitchId") != in.VSwitchID) ||
			(c.has("ZoneId") && c.get("ZoneId") != in.Zone) || (c.has("Status") && c.get("Status") != in.Status) {
			continue
		}
		j := instanceJSON{InstanceID: in.ID, InstanceName: in.Name, HostName: in.ID, RegionID: s.st.region, ZoneID: in.Zone,
			Status: in.Status, InstanceType: "ecs.g7.large", InstanceNetworkType: "vpc", OSType: "linux", CreationTime: "2024-01-01T00:00Z"}
		j.VpcAttributes.VpcID, j.VpcAttributes.VSwitchID = in.VPCID, in.VSwitchID
		j.VpcAttributes.PrivateIPAddress.IPAddress = []string{in.PrivateIP.String()}
		if !in.Created.IsZero() {
			j.CreationTime = in.Created.UTC().Format(instanceTimeLayout)
		}
		j.NetworkInterfaces.NetworkInterface = enis[in.ID]
		if nis := j.NetworkInterfaces.NetworkInterface; len(nis) > 0 && nis[0].Type == ENITypePrimary {
			nis[0].Ipv6Sets.Ipv6Set = ipv6Sets(in.IPv6)
		}
		all = append(all, j)
	}
	out := struct {
		NextToken  string `json:"NextToken"`
		TotalCount int    `json:"TotalCount"`
		PageNumber int    `json:"PageNumber"`
		PageSize   int    `json:"PageSize"`
		Instances  struct {
			Instance []instanceJSON `json:"Instance"`
		} `json:"Instances"`
	}{TotalCount: len(all), PageNumber: page, PageSize: size}
	if tokenMode {
		out.PageNumber, out.PageSize = 0, 0
		out.Instances.Instance, out.NextToken = tokenPage(all, maxResults, "i", func(j instanceJSON) string { return j.InstanceID })
		return out, nil
	}
	out.Instances.Instance = paginate(all, page, size)
	return out, nil
}

// tokenPage cuts a NextToken page of at most limit items off items (sorted
// by ID, starting at the token's ID) and returns the token of the next
// page, empty on the last one.
func tokenPage[T any](items []T, limit int, kind string, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	return items[:limit], encodeToken(kind, id(items[limit]))
}
