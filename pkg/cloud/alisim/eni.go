package alisim

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Elastic network interfaces (ENIs) and their source/destination check.
//
// Every instance has a primary ENI carrying its private IP; secondary ENIs
// may be attached. Since 2025-04-22 Alibaba turns the source/destination
// check on by default for the ENIs of new instances (a phased rollout): an
// ENI with the check on drops every packet whose source (outgoing) or
// destination (incoming) is not one of its own IPs, which is every pod
// packet routed to the instance by a custom route entry. The simulator
// models the default with Options.SourceDestCheckSince and the two ECS
// actions that read and change it, DescribeNetworkInterfaces and
// ModifyNetworkInterfaceAttribute.

// ENI types and statuses as DescribeNetworkInterfaces reports them.
const (
	ENITypePrimary     = "Primary"
	ENITypeSecondary   = "Secondary"
	ENIStatusInUse     = "InUse"
	ENIStatusAvailable = "Available"
)

// DefaultSourceDestCheckSince is 2025-04-22 00:00 UTC+8, when Alibaba began
// enabling the source/destination check by default on new ENIs.
var DefaultSourceDestCheckSince = time.Date(2025, 4, 21, 16, 0, 0, 0, time.UTC)

const defaultENIModifyDelay = 50 * time.Millisecond

// Error codes of the ENI actions. The ECS reference lists
// InvalidEniId.NotFound (404); InvalidOperation.Conflict is what the Alibaba
// CCM retries ModifyNetworkInterfaceAttribute on. See docs/alisim.md.
const (
	CodeENINotFound    = "InvalidEniId.NotFound"
	CodeENIConflict    = "InvalidOperation.Conflict"
	CodeENIInvalidType = "InvalidParameter.Type"
)

// Limits of DescribeNetworkInterfaces: at most 100 IDs or addresses per
// call; NextToken pages of 10 to 500 (values outside are clamped, as the
// reference words it); PageNumber/PageSize pages of at most 100.
const (
	maxENIFilterValues = 100
	minENIResults      = 10
	maxENIResults      = 500
	maxENIPageSize     = 100
)

// NetworkInterface is an ENI. PrivateIPs[0] is its primary private IP.
type NetworkInterface struct {
	ID string `json:"id"`
	// InstanceID is the instance it is attached to; empty when detached.
	InstanceID      string       `json:"instanceId,omitempty"`
	Type            string       `json:"type"`
	VSwitchID       string       `json:"vswitchId"`
	VPCID           string       `json:"vpcId"`
	Zone            string       `json:"zone"`
	PrivateIPs      []netip.Addr `json:"privateIps"`
	MAC             string       `json:"mac,omitempty"`
	SourceDestCheck bool         `json:"sourceDestCheck"`
	Created         time.Time    `json:"created,omitzero"`

	// pending is a ModifyNetworkInterfaceAttribute not visible yet.
	pending *pendingCheck
}

type pendingCheck struct {
	value bool
	until time.Time
}

// Status is InUse when attached, Available otherwise.
func (e *NetworkInterface) Status() string {
	if e.InstanceID != "" {
		return ENIStatusInUse
	}
	return ENIStatusAvailable
}

// defaultCheck is the source/destination check a new ENI of an
// instance created at created gets.
func (s *Simulator) defaultCheck(created time.Time) bool {
	return !created.IsZero() && !created.Before(s.opts.SourceDestCheckSince)
}

// loadENIsLocked installs the ENIs of a state being loaded into m and gives
// every instance without one a primary ENI. ENIs attached to an instance
// the state does not have are dropped, as if released with it.
func (s *Simulator) loadENIsLocked(m *model, in []NetworkInterface, now time.Time) error {
	primary := map[string]bool{}
	for i := range in {
		e := in[i]
		e.PrivateIPs = slices.Clone(e.PrivateIPs)
		if e.ID == "" {
			e.ID = s.newID("eni-")
		}
		if _, dup := m.enis[e.ID]; dup {
			return fmt.Errorf("network interface %s appears twice", e.ID)
		}
		if e.Type == "" {
			e.Type = ENITypeSecondary
		}
		if e.Type != ENITypePrimary && e.Type != ENITypeSecondary {
			return fmt.Errorf("network interface %s: type %q is neither Primary nor Secondary", e.ID, e.Type)
		}
		if e.InstanceID != "" {
			inst, ok := m.instances[e.InstanceID]
			if !ok {
				// A state edited by dropping instances: their ENIs go
				// with them, as they do when an instance is released.
				continue
			}
			if e.VSwitchID == "" {
				e.VSwitchID = inst.VSwitchID
			}
			if e.Type == ENITypePrimary {
				if primary[e.InstanceID] {
					return fmt.Errorf("instance %s has two primary network interfaces", e.InstanceID)
				}
				primary[e.InstanceID] = true
				if len(e.PrivateIPs) == 0 {
					e.PrivateIPs = []netip.Addr{inst.PrivateIP}
				}
			}
		} else if e.Type == ENITypePrimary {
			return fmt.Errorf("network interface %s: a primary network interface is attached to an instance", e.ID)
		}
		w, ok := m.vswitches[e.VSwitchID]
		if !ok {
			return fmt.Errorf("network interface %s: unknown vswitch %q", e.ID, e.VSwitchID)
		}
		e.VPCID, e.Zone = w.VPCID, w.Zone
		if len(e.PrivateIPs) == 0 {
			return fmt.Errorf("network interface %s: at least one private IP is required", e.ID)
		}
		if e.MAC == "" {
			e.MAC = s.newMAC()
		}
		if e.Created.IsZero() {
			e.Created = now
		}
		m.enis[e.ID] = &e
	}
	for _, id := range sortedKeys(m.instances) {
		if !primary[id] {
			inst := m.instances[id]
			e := s.newPrimaryENI(inst, now)
			m.enis[e.ID] = e
		}
	}
	return nil
}

// newPrimaryENI builds the primary ENI of an instance, with the check the
// instance's creation date implies.
func (s *Simulator) newPrimaryENI(in *Instance, now time.Time) *NetworkInterface {
	created := in.Created
	if created.IsZero() {
		created = now
	}
	return &NetworkInterface{
		ID: s.newID("eni-"), InstanceID: in.ID, Type: ENITypePrimary,
		VSwitchID: in.VSwitchID, VPCID: in.VPCID, Zone: in.Zone,
		PrivateIPs: []netip.Addr{in.PrivateIP}, MAC: s.newMAC(),
		SourceDestCheck: s.defaultCheck(in.Created), Created: created,
	}
}

// newMAC returns a MAC address in Alibaba's 00:16:3e OUI, unique per
// simulator (it uses the ID sequence).
func (s *Simulator) newMAC() string {
	s.seq++
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", byte(s.seq>>16), byte(s.seq>>8), byte(s.seq))
}

// advanceENIsLocked makes due ModifyNetworkInterfaceAttribute changes
// visible.
func (s *Simulator) advanceENIsLocked(now time.Time) {
	for _, e := range s.st.enis {
		if e.pending != nil && !now.Before(e.pending.until) {
			e.SourceDestCheck = e.pending.value
			e.pending = nil
		}
	}
}

// networkInterfacesLocked returns copies of the ENIs (of one instance, or
// all with ""), sorted by ID.
func (s *Simulator) networkInterfacesLocked(instanceID string) []NetworkInterface {
	s.advanceENIsLocked(s.clock.Now())
	var out []NetworkInterface
	for _, id := range sortedKeys(s.st.enis) {
		e := s.st.enis[id]
		if instanceID != "" && e.InstanceID != instanceID {
			continue
		}
		c := *e
		c.PrivateIPs = slices.Clone(e.PrivateIPs)
		c.pending = nil
		out = append(out, c)
	}
	return out
}

// primaryENILocked returns the primary ENI of an instance, or nil.
func (m *model) primaryENILocked(instanceID string) *NetworkInterface {
	for _, e := range m.enis {
		if e.InstanceID == instanceID && e.Type == ENITypePrimary {
			return e
		}
	}
	return nil
}

// usedIPsLocked are the private IPs held by instances and ENIs.
func (m *model) usedIPsLocked() map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, in := range m.instances {
		used[in.PrivateIP] = true
	}
	for _, e := range m.enis {
		for _, ip := range e.PrivateIPs {
			used[ip] = true
		}
	}
	return used
}

// NetworkInterfaces returns the ENIs of an instance ("" for every ENI),
// sorted by ID, with changes applied up to now.
func (s *Simulator) NetworkInterfaces(instanceID string) ([]NetworkInterface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.instances[instanceID]; instanceID != "" && !ok {
		return nil, fmt.Errorf("instance %s: %w", instanceID, ErrNotFound)
	}
	return s.networkInterfacesLocked(instanceID), nil
}

// SetSourceDestCheck turns the source/destination check of an ENI on or off
// out of band, immediately, as a user of the console would. A change made
// through the API and not visible yet is dropped.
func (s *Simulator) SetSourceDestCheck(eniID string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.st.enis[eniID]
	if !ok {
		return fmt.Errorf("network interface %s: %w", eniID, ErrNotFound)
	}
	e.SourceDestCheck, e.pending = on, nil
	return nil
}

// SetInstanceSourceDestCheck sets the check of an instance's primary ENI
// out of band and returns that ENI's ID.
func (s *Simulator) SetInstanceSourceDestCheck(instanceID string, on bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.instances[instanceID]; !ok {
		return "", fmt.Errorf("instance %s: %w", instanceID, ErrNotFound)
	}
	e := s.st.primaryENILocked(instanceID)
	if e == nil {
		return "", fmt.Errorf("primary network interface of instance %s: %w", instanceID, ErrNotFound)
	}
	e.SourceDestCheck, e.pending = on, nil
	return e.ID, nil
}

// AttachSecondaryENI creates a secondary ENI with a free private IP of the
// instance's vSwitch and attaches it to the instance. Its check follows
// the default for ENIs created now.
func (s *Simulator) AttachSecondaryENI(instanceID string) (NetworkInterface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.st.instances[instanceID]
	if !ok {
		return NetworkInterface{}, fmt.Errorf("instance %s: %w", instanceID, ErrNotFound)
	}
	w := s.st.vswitches[in.VSwitchID]
	used := s.st.usedIPsLocked()
	var ip netip.Addr
	for a := w.CIDR.Masked().Addr().Next().Next().Next().Next(); w.CIDR.Contains(a) && w.CIDR.Contains(a.Next()); a = a.Next() {
		if !used[a] {
			ip = a
			break
		}
	}
	if !ip.IsValid() {
		return NetworkInterface{}, fmt.Errorf("vswitch %s %s has no free address: %w", w.ID, w.CIDR, ErrInvalid)
	}
	now := s.clock.Now()
	e := &NetworkInterface{
		ID: s.newID("eni-"), InstanceID: in.ID, Type: ENITypeSecondary,
		VSwitchID: w.ID, VPCID: w.VPCID, Zone: w.Zone, PrivateIPs: []netip.Addr{ip},
		MAC: s.newMAC(), SourceDestCheck: s.defaultCheck(now), Created: now,
	}
	s.st.enis[e.ID] = e
	out := *e
	out.PrivateIPs = slices.Clone(e.PrivateIPs)
	out.pending = nil
	return out, nil
}

// releaseENIsLocked removes the ENIs attached to a released instance: the
// primary one is always released with it, and the simulator releases
// secondary ones too (DeleteOnRelease, the default for ENIs created with an
// instance).
func (m *model) releaseENIsLocked(instanceID string) {
	for id, e := range m.enis {
		if e.InstanceID == instanceID {
			delete(m.enis, id)
		}
	}
}

// listParams reads a repeated parameter (Name.1, Name.2, ...) as the SDK
// sends it, refusing more than maxENIFilterValues values.
func listParams(c *call, name string) ([]string, *apiError) {
	var out []string
	prefix := name + "."
	for k, vs := range c.params {
		if !strings.HasPrefix(k, prefix) || len(vs) == 0 || vs[0] == "" {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(k, prefix)); err != nil {
			continue
		}
		out = append(out, vs[0])
	}
	if len(out) > maxENIFilterValues {
		return nil, errorf(CodeInvalidParameter, "%s.N accepts at most %d values.", name, maxENIFilterValues)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// eniJSON is one element of NetworkInterfaceSets.NetworkInterfaceSet, with
// the field names of the SDK's ecs.NetworkInterfaceSet.
type eniJSON struct {
	NetworkInterfaceID   string `json:"NetworkInterfaceId"`
	NetworkInterfaceName string `json:"NetworkInterfaceName"`
	Description          string `json:"Description"`
	Type                 string `json:"Type"`
	Status               string `json:"Status"`
	InstanceID           string `json:"InstanceId"`
	VpcID                string `json:"VpcId"`
	VSwitchID            string `json:"VSwitchId"`
	ZoneID               string `json:"ZoneId"`
	PrivateIPAddress     string `json:"PrivateIpAddress"`
	MacAddress           string `json:"MacAddress"`
	CreationTime         string `json:"CreationTime"`
	SourceDestCheck      bool   `json:"SourceDestCheck"`
	DeleteOnRelease      bool   `json:"DeleteOnRelease"`
	ServiceManaged       bool   `json:"ServiceManaged"`
	PrivateIPSets        struct {
		PrivateIPSet []privateIPJSON `json:"PrivateIpSet"`
	} `json:"PrivateIpSets"`
	Attachment struct {
		InstanceID  string `json:"InstanceId"`
		DeviceIndex int    `json:"DeviceIndex"`
	} `json:"Attachment"`
}

type privateIPJSON struct {
	PrivateIPAddress string `json:"PrivateIpAddress"`
	Primary          bool   `json:"Primary"`
}

func toENIJSON(e *NetworkInterface) eniJSON {
	j := eniJSON{
		NetworkInterfaceID: e.ID, Type: e.Type, Status: e.Status(), InstanceID: e.InstanceID,
		VpcID: e.VPCID, VSwitchID: e.VSwitchID, ZoneID: e.Zone, PrivateIPAddress: e.PrivateIPs[0].String(),
		MacAddress: e.MAC, CreationTime: e.Created.UTC().Format(timeLayout), SourceDestCheck: e.SourceDestCheck,
		DeleteOnRelease: true,
	}
	for i, ip := range e.PrivateIPs {
		j.PrivateIPSets.PrivateIPSet = append(j.PrivateIPSets.PrivateIPSet, privateIPJSON{PrivateIPAddress: ip.String(), Primary: i == 0})
	}
	j.Attachment.InstanceID = e.InstanceID
	if e.Type == ENITypeSecondary {
		j.Attachment.DeviceIndex = 1
	}
	return j
}

var eniStatuses = map[string]bool{"Available": true, "Attaching": true, "InUse": true, "Detaching": true, "Deleting": true}

// describeNetworkInterfaces serves ECS DescribeNetworkInterfaces: filters by
// InstanceId, NetworkInterfaceId.N, PrivateIpAddress.N, PrimaryIpAddress,
// Type, Status, VpcId and VSwitchId; pages with NextToken/MaxResults when
// either is given, else with PageNumber/PageSize.
func (s *Simulator) describeNetworkInterfaces(c *call) (any, *apiError) {
	ids, aerr := listParams(c, "NetworkInterfaceId")
	if aerr != nil {
		return nil, aerr
	}
	ipStrs, aerr := listParams(c, "PrivateIpAddress")
	if aerr != nil {
		return nil, aerr
	}
	ips := map[netip.Addr]bool{}
	for _, v := range ipStrs {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, errorf(CodeInvalidParameter, "PrivateIpAddress.N contains %q, not an IP address.", v)
		}
		ips[a] = true
	}
	var primaryIP netip.Addr
	if v := c.get("PrimaryIpAddress"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, errorf(CodeInvalidParameter, "PrimaryIpAddress %q is not an IP address.", v)
		}
		primaryIP = a
	}
	typ := c.get("Type")
	if typ != "" && !strings.EqualFold(typ, ENITypePrimary) && !strings.EqualFold(typ, ENITypeSecondary) {
		return nil, &apiError{Code: CodeENIInvalidType, Message: fmt.Sprintf("The specified Type %q is not valid.", typ), Status: http.StatusBadRequest}
	}
	if st := c.get("Status"); st != "" && !eniStatuses[st] {
		return nil, errorf(CodeInvalidStatus, "Status %q is not supported.", st)
	}
	tokenMode := c.params.Has("NextToken") || c.params.Has("MaxResults")
	maxResults := minENIResults
	if v := c.get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errorf(CodeInvalidParameter, "MaxResults must be an integer.")
		}
		maxResults = min(max(n, minENIResults), maxENIResults)
	}
	from, aerr := parseNextToken(c, "eni")
	if aerr != nil {
		return nil, aerr
	}
	page, size, aerr := parsePage(c, maxENIPageSize)
	if aerr != nil {
		return nil, aerr
	}
	idSet := map[string]bool{}
	for _, id := range ids {
		idSet[id] = true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceENIsLocked(c.now)
	var all []eniJSON
	for _, id := range sortedKeys(s.st.enis) {
		if c.denied {
			break // refused by the key's RAM policy: an empty list (see authorize)
		}
		e := s.st.enis[id]
		if (len(idSet) > 0 && !idSet[id]) || (from != "" && id < from) ||
			(c.has("InstanceId") && c.get("InstanceId") != e.InstanceID) ||
			(c.has("VpcId") && c.get("VpcId") != e.VPCID) || (c.has("VSwitchId") && c.get("VSwitchId") != e.VSwitchID) ||
			(typ != "" && !strings.EqualFold(typ, e.Type)) || (c.has("Status") && c.get("Status") != e.Status()) ||
			(primaryIP.IsValid() && primaryIP != e.PrivateIPs[0]) || (len(ips) > 0 && !slices.ContainsFunc(e.PrivateIPs, func(a netip.Addr) bool { return ips[a] })) {
			continue
		}
		all = append(all, toENIJSON(e))
	}
	out := struct {
		NextToken            string `json:"NextToken"`
		TotalCount           int    `json:"TotalCount"`
		PageNumber           int    `json:"PageNumber"`
		PageSize             int    `json:"PageSize"`
		NetworkInterfaceSets struct {
			NetworkInterfaceSet []eniJSON `json:"NetworkInterfaceSet"`
		} `json:"NetworkInterfaceSets"`
	}{TotalCount: len(all), PageNumber: page, PageSize: size}
	if tokenMode {
		// With NextToken the reference calls TotalCount invalid and
		// ignores PageNumber/PageSize.
		out.PageNumber, out.PageSize = 0, maxResults
		out.NetworkInterfaceSets.NetworkInterfaceSet, out.NextToken = tokenPage(all, maxResults, "eni", func(j eniJSON) string { return j.NetworkInterfaceID })
		return out, nil
	}
	out.NetworkInterfaceSets.NetworkInterfaceSet = paginate(all, page, size)
	return out, nil
}

// modifyNetworkInterfaceAttribute serves ECS ModifyNetworkInterfaceAttribute
// for the attributes that matter here: SourceDestCheck (and the name and
// description, accepted and ignored). A check change becomes visible after
// Options.ENIModifyDelay; another change of the same ENI meanwhile is a
// conflict.
func (s *Simulator) modifyNetworkInterfaceAttribute(c *call) (any, *apiError) {
	id := c.get("NetworkInterfaceId")
	if id == "" {
		return nil, errorf(CodeMissingParameter, "NetworkInterfaceId is mandatory for this action.")
	}
	var want *bool
	if v := c.get("SourceDestCheck"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errorf(CodeInvalidParameter, "SourceDestCheck must be true or false.")
		}
		want = &b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.advanceENIsLocked(now)
	e, ok := s.st.enis[id]
	if !ok {
		return nil, &apiError{Code: CodeENINotFound, Message: "The specified NetworkInterfaceId does not exist.", Status: http.StatusNotFound}
	}
	if e.pending != nil {
		return nil, &apiError{Code: CodeENIConflict, Message: "The operation conflicts with an operation in progress on the network interface.", Status: http.StatusBadRequest}
	}
	if want != nil && *want != e.SourceDestCheck {
		if d := s.opts.ENIModifyDelay; d > 0 {
			e.pending = &pendingCheck{value: *want, until: now.Add(d)}
		} else {
			e.SourceDestCheck = *want
		}
	}
	return struct{}{}, nil
}

// instanceTimeLayout is the minute-precision form of DescribeInstances'
// CreationTime.
const instanceTimeLayout = "2006-01-02T15:04Z"

// instanceENIJSON is one element of DescribeInstances'
// NetworkInterfaces.NetworkInterface (the SDK's ecs.NetworkInterface).
type instanceENIJSON struct {
	NetworkInterfaceID string `json:"NetworkInterfaceId"`
	Type               string `json:"Type"`
	MacAddress         string `json:"MacAddress"`
	PrimaryIPAddress   string `json:"PrimaryIpAddress"`
	VSwitchID          string `json:"VSwitchId"`
	Ipv6Sets           struct {
		Ipv6Set []ipv6SetJSON `json:"Ipv6Set"`
	} `json:"Ipv6Sets"`
}

// instanceENIsLocked lists the ENIs of every instance for DescribeInstances,
// primary first; one pass over the ENIs, however many instances are asked
// for.
func (s *Simulator) instanceENIsLocked() map[string][]instanceENIJSON {
	out := map[string][]instanceENIJSON{}
	for _, id := range sortedKeys(s.st.enis) {
		e := s.st.enis[id]
		if e.InstanceID == "" {
			continue
		}
		j := instanceENIJSON{NetworkInterfaceID: e.ID, Type: e.Type, MacAddress: e.MAC, PrimaryIPAddress: e.PrivateIPs[0].String(), VSwitchID: e.VSwitchID}
		if e.Type == ENITypePrimary {
			out[e.InstanceID] = append([]instanceENIJSON{j}, out[e.InstanceID]...)
		} else {
			out[e.InstanceID] = append(out[e.InstanceID], j)
		}
	}
	return out
}

// registerENIAdmin adds the ENI routes of the admin API.
func (s *Simulator) registerENIAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/enis", func(w http.ResponseWriter, r *http.Request) {
		out, err := s.NetworkInterfaces(r.URL.Query().Get("instance"))
		respond(w, err, out)
	})
	mux.HandleFunc("POST /admin/enis", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			InstanceID string `json:"instanceId"`
		}
		if decode(w, r, &req) {
			out, err := s.AttachSecondaryENI(req.InstanceID)
			respond(w, err, out)
		}
	})
	mux.HandleFunc("PATCH /admin/enis/{id}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SourceDestCheck bool `json:"sourceDestCheck"`
		}
		if decode(w, r, &req) {
			respond(w, s.SetSourceDestCheck(r.PathValue("id"), req.SourceDestCheck), map[string]any{"id": r.PathValue("id"), "sourceDestCheck": req.SourceDestCheck})
		}
	})
	mux.HandleFunc("PATCH /admin/instances/{id}/primary-eni", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SourceDestCheck bool `json:"sourceDestCheck"`
		}
		if decode(w, r, &req) {
			id, err := s.SetInstanceSourceDestCheck(r.PathValue("id"), req.SourceDestCheck)
			respond(w, err, map[string]any{"id": id, "instanceId": r.PathValue("id"), "sourceDestCheck": req.SourceDestCheck})
		}
	})
}
