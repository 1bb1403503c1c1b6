package alisim

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits of the VPC API.
const (
	maxBatchEntries     = 50
	maxRouteTablePage   = 50
	maxVpcPage          = 50
	maxEntryResults     = 100
	defaultEntryResults = 10
	maxEntryNameLen     = 128
	maxDescriptionLen   = 256
	clientTokenTTL      = 24 * time.Hour
)

var (
	cloudServiceCIDR = netip.MustParsePrefix("100.64.0.0/10")
	ipv6Default      = netip.MustParsePrefix("::/0")
)

// Origin values of DescribeRouteEntryList (its reference page lists
// RoutePropagation, SystemCreate and CustomCreate; propagation is not
// modelled).
const (
	originCustom = "CustomCreate"
	originSystem = "SystemCreate"
)

// --- responses, field names as in services/vpc of the SDK ---

type nextHopJSON struct {
	NextHopID       string `json:"NextHopId"`
	NextHopType     string `json:"NextHopType"`
	Enabled         int    `json:"Enabled"`
	Weight          int    `json:"Weight"`
	NextHopRegionID string `json:"NextHopRegionId"`
}

type routeEntryJSON struct {
	RouteEntryID         string `json:"RouteEntryId"`
	RouteTableID         string `json:"RouteTableId"`
	DestinationCidrBlock string `json:"DestinationCidrBlock"`
	Type                 string `json:"Type"`
	Status               string `json:"Status"`
	NextHopType          string `json:"NextHopType"`
	InstanceID           string `json:"InstanceId"`
	IPVersion            string `json:"IpVersion"`
	RouteEntryName       string `json:"RouteEntryName"`
	Description          string `json:"Description"`
	GmtModified          string `json:"GmtModified"`
	Origin               string `json:"Origin"`
	NextHops             struct {
		NextHop []nextHopJSON `json:"NextHop"`
	} `json:"NextHops"`
}

type failedEntryJSON struct {
	RouteEntryID  string `json:"RouteEntryId,omitempty"`
	DstCidrBlock  string `json:"DstCidrBlock"`
	NextHop       string `json:"NextHop"`
	FailedCode    string `json:"FailedCode"`
	FailedMessage string `json:"FailedMessage"`
}

func (s *Simulator) entryJSON(e *RouteEntry) routeEntryJSON {
	out := routeEntryJSON{
		RouteEntryID:         e.ID,
		RouteTableID:         e.TableID,
		DestinationCidrBlock: e.Destination.String(),
		Type:                 e.Type,
		Status:               e.Status,
		NextHopType:          e.NextHopType,
		InstanceID:           e.NextHopID,
		IPVersion:            ipVersion(e.Destination),
		RouteEntryName:       e.Name,
		Description:          e.Description,
		GmtModified:          e.Created.UTC().Format(timeLayout),
		Origin:               originCustom,
	}
	if e.Type == EntryTypeSystem {
		out.Origin = originSystem
	}
	out.NextHops.NextHop = []nextHopJSON{{NextHopID: e.NextHopID, NextHopType: e.NextHopType, Enabled: 1, NextHopRegionID: s.st.region}}
	return out
}

func ipVersion(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// --- parameter helpers ---

// parseDestination parses a destination CIDR block; a bare address is a
// host route. The prefix must be canonical (no host bits set).
func parseDestination(s string) (netip.Prefix, *apiError) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errorf(CodeCidrMalformed, "%q", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errorf(CodeCidrMalformed, "%q", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() || p.Addr().Zone() != "" || p != p.Masked() {
		return netip.Prefix{}, errorf(CodeCidrMalformed, "%q", s)
	}
	return p, nil
}

func parseInt(c *call, name string, def, lo, hi int) (int, *apiError) {
	v := c.get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(CodeInvalidParameter, "%s must be an integer from %d to %d.", name, lo, hi)
	}
	return n, nil
}

// parsePage reads PageNumber (default 1) and PageSize (default 10, at most
// maxSize) of a Describe call.
func parsePage(c *call, maxSize int) (page, size int, aerr *apiError) {
	if page, aerr = parseInt(c, "PageNumber", 1, 1, 1<<30); aerr != nil {
		return 0, 0, aerr
	}
	if size, aerr = parseInt(c, "PageSize", 10, 1, maxSize); aerr != nil {
		return 0, 0, aerr
	}
	return page, size, nil
}

func paginate[T any](items []T, page, size int) []T {
	start := (page - 1) * size
	if start >= len(items) {
		return []T{}
	}
	return items[start:min(start+size, len(items))]
}

func validateNameDescription(name, desc string) *apiError {
	if len(name) > maxEntryNameLen || strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		return errorf(CodeEntryNameMalformed, "")
	}
	if len(desc) > maxDescriptionLen || strings.HasPrefix(desc, "http://") || strings.HasPrefix(desc, "https://") {
		return errorf(CodeDescriptionMalformed, "")
	}
	return nil
}

// IP version encodings of CreateRouteEntries' RouteEntries.N.IpVersion.
// The action's reference page declares an integer with the values 4 and 6
// (and shows "IPv4" as its example); DescribeRouteEntryList documents the
// names IPv4 and IPv6. Options.IPVersionEncoding picks which the simulator
// accepts; anything else is IllegalParam.IpVersion.
const (
	IPVersionAny     = "any"     // 4, 6, IPv4 and IPv6
	IPVersionInteger = "integer" // 4 and 6 only
	IPVersionName    = "name"    // IPv4 and IPv6 only
)

func (s *Simulator) ipVersionAccepted(v string) bool {
	integer := v == "4" || v == "6"
	name := strings.EqualFold(v, "IPv4") || strings.EqualFold(v, "IPv6")
	switch s.opts.IPVersionEncoding {
	case IPVersionInteger:
		return integer
	case IPVersionName:
		return name
	default:
		return integer || name
	}
}

// parseBatchIPVersion maps an accepted IpVersion value to IPv4 or IPv6.
func parseBatchIPVersion(v string) string {
	switch {
	case v == "4" || strings.EqualFold(v, "IPv4"):
		return "IPv4"
	case v == "6" || strings.EqualFold(v, "IPv6"):
		return "IPv6"
	}
	return v
}

// checkDestinationLocked applies the VPC's rules on custom destinations.
func (s *Simulator) checkDestinationLocked(vpc *VPC, p netip.Prefix) *apiError {
	if p.Addr().Is4() {
		if p.Bits() >= cloudServiceCIDR.Bits() && cloudServiceCIDR.Contains(p.Addr()) {
			return errorf(CodeCidrInvalid, "%s is in the cloud service range 100.64.0.0/10.", p)
		}
		for _, w := range s.st.vswitches {
			if w.VPCID == vpc.ID && w.CIDR.Bits() <= p.Bits() && w.CIDR.Contains(p.Addr()) {
				return errorf(CodeCidrInvalid, "%s is the same as or inside vSwitch %s %s.", p, w.ID, w.CIDR)
			}
		}
		return nil
	}
	if !vpc.IPv6CIDR.IsValid() {
		return errorf(CodeVpcIPv6NotEnabled, "IPv6 has not been enabled for the VPC.")
	}
	for _, w := range s.st.vswitches {
		if w.VPCID == vpc.ID && w.IPv6CIDR.IsValid() && w.IPv6CIDR.Overlaps(p) {
			return errorf(CodeCidrOverlapVSwitchV6, "%s overlaps vSwitch %s %s.", p, w.ID, w.IPv6CIDR)
		}
	}
	return nil
}

// checkIPv6HopLocked refuses an IPv6 route to an instance without an IPv6
// address with the code of CreateRouteEntry's error table.
func (s *Simulator) checkIPv6HopLocked(dst netip.Prefix, hopID string) *apiError {
	if in, ok := s.st.instances[hopID]; ok && dst.Addr().Is6() && len(in.IPv6) == 0 {
		return errorf(CodeNextHopNotSupportIPv6, "Instance %s has no IPv6 address.", hopID)
	}
	return nil
}

// checkNextHopLocked validates an Instance next hop for a VPC.
func (s *Simulator) checkNextHopLocked(vpc *VPC, hopType, hopID string) *apiError {
	if hopType != NextHopInstance {
		return errorf(CodeInvalidNextHopType, "the simulator models NextHopType Instance only, not %q.", hopType)
	}
	if hopID == "" {
		return errorf(CodeMissingParameter, "NextHopId is mandatory for this action.")
	}
	in, ok := s.st.instances[hopID]
	if !ok {
		return errorf(CodeInstanceNotFound, "")
	}
	if in.VPCID != vpc.ID {
		return errorf(CodeInstanceOtherVpc, "")
	}
	return nil
}

func (s *Simulator) customCountLocked(table string) int {
	n := 0
	for _, e := range s.st.byTable[table] {
		if e.Type == EntryTypeCustom {
			n++
		}
	}
	return n
}

func (s *Simulator) quotaLocked(table string) int {
	if q := s.st.tables[table].Quota; q > 0 {
		return q
	}
	return DefaultQuota
}

// busyErrorLocked returns the busy error when a write is in flight.
func (s *Simulator) busyErrorLocked(vpcID string, now time.Time) *apiError {
	if s.vpcBusyLocked(vpcID, now) {
		return errorf(s.opts.BusyCode, "")
	}
	return nil
}

// --- read actions ---

func (s *Simulator) describeVpcs(c *call) (any, *apiError) {
	page, size, aerr := parsePage(c, maxVpcPage)
	if aerr != nil {
		return nil, aerr
	}
	var want map[string]bool
	if ids := c.get("VpcId"); ids != "" {
		want = map[string]bool{}
		for _, id := range strings.Split(ids, ",") {
			want[strings.TrimSpace(id)] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type vpcJSON struct {
		VpcID         string `json:"VpcId"`
		RegionID      string `json:"RegionId"`
		Status        string `json:"Status"`
		VpcName       string `json:"VpcName"`
		CidrBlock     string `json:"CidrBlock"`
		Ipv6CidrBlock string `json:"Ipv6CidrBlock"`
		EnabledIpv6   bool   `json:"EnabledIpv6"`
		VRouterID     string `json:"VRouterId"`
		IsDefault     bool   `json:"IsDefault"`
		CreationTime  string `json:"CreationTime"`
		VSwitchIDs    struct {
			VSwitchID []string `json:"VSwitchId"`
		} `json:"VSwitchIds"`
		RouterTableIDs struct {
			RouterTableIDs []string `json:"RouterTableIds"`
		} `json:"RouterTableIds"`
	}
	var all []vpcJSON
	for _, id := range sortedKeys(s.st.vpcs) {
		v := s.st.vpcs[id]
		if want != nil && !want[id] {
			continue
		}
		if name := c.get("VpcName"); name != "" && name != v.Name {
			continue
		}
		j := vpcJSON{VpcID: v.ID, RegionID: s.st.region, Status: "Available", VpcName: v.Name, CidrBlock: v.CIDR.String(), VRouterID: v.VRouterID, CreationTime: "2024-01-01T00:00:00Z"}
		if v.IPv6CIDR.IsValid() {
			j.Ipv6CidrBlock, j.EnabledIpv6 = v.IPv6CIDR.String(), true
		}
		j.VSwitchIDs.VSwitchID = []string{}
		for _, wid := range sortedKeys(s.st.vswitches) {
			if s.st.vswitches[wid].VPCID == v.ID {
				j.VSwitchIDs.VSwitchID = append(j.VSwitchIDs.VSwitchID, wid)
			}
		}
		j.RouterTableIDs.RouterTableIDs = []string{}
		for _, tid := range sortedKeys(s.st.tables) {
			if s.st.tables[tid].VPCID == v.ID {
				j.RouterTableIDs.RouterTableIDs = append(j.RouterTableIDs.RouterTableIDs, tid)
			}
		}
		all = append(all, j)
	}
	out := struct {
		TotalCount int `json:"TotalCount"`
		PageNumber int `json:"PageNumber"`
		PageSize   int `json:"PageSize"`
		Vpcs       struct {
			Vpc []vpcJSON `json:"Vpc"`
		} `json:"Vpcs"`
	}{TotalCount: len(all), PageNumber: page, PageSize: size}
	out.Vpcs.Vpc = paginate(all, page, size)
	return out, nil
}

func (s *Simulator) describeVSwitches(c *call) (any, *apiError) {
	page, size, aerr := parsePage(c, maxVpcPage)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type vswJSON struct {
		VSwitchID               string `json:"VSwitchId"`
		VpcID                   string `json:"VpcId"`
		Status                  string `json:"Status"`
		CidrBlock               string `json:"CidrBlock"`
		Ipv6CidrBlock           string `json:"Ipv6CidrBlock"`
		EnabledIpv6             bool   `json:"EnabledIpv6"`
		ZoneID                  string `json:"ZoneId"`
		VSwitchName             string `json:"VSwitchName"`
		AvailableIPAddressCount int64  `json:"AvailableIpAddressCount"`
		IsDefault               bool   `json:"IsDefault"`
		CreationTime            string `json:"CreationTime"`
		RouteTable              struct {
			RouteTableID   string `json:"RouteTableId"`
			RouteTableType string `json:"RouteTableType"`
		} `json:"RouteTable"`
	}
	var all []vswJSON
	for _, id := range sortedKeys(s.st.vswitches) {
		w := s.st.vswitches[id]
		if (c.has("VpcId") && c.get("VpcId") != w.VPCID) || (c.has("VSwitchId") && c.get("VSwitchId") != w.ID) ||
			(c.has("RouteTableId") && c.get("RouteTableId") != w.RouteTableID) || (c.has("ZoneId") && c.get("ZoneId") != w.Zone) {
			continue
		}
		j := vswJSON{VSwitchID: w.ID, VpcID: w.VPCID, Status: "Available", CidrBlock: w.CIDR.String(), ZoneID: w.Zone, CreationTime: "2024-01-01T00:00:00Z"}
		if w.IPv6CIDR.IsValid() {
			j.Ipv6CidrBlock, j.EnabledIpv6 = w.IPv6CIDR.String(), true
		}
		used := 0
		for _, in := range s.st.instances {
			if in.VSwitchID == w.ID {
				used++
			}
		}
		j.AvailableIPAddressCount = int64(max(0, (1<<(w.CIDR.Addr().BitLen()-w.CIDR.Bits()))-4-used))
		j.RouteTable.RouteTableID = w.RouteTableID
		if t := s.st.tables[w.RouteTableID]; t != nil {
			j.RouteTable.RouteTableType = t.Type
		}
		all = append(all, j)
	}
	out := struct {
		TotalCount int `json:"TotalCount"`
		PageNumber int `json:"PageNumber"`
		PageSize   int `json:"PageSize"`
		VSwitches  struct {
			VSwitch []vswJSON `json:"VSwitch"`
		} `json:"VSwitches"`
	}{TotalCount: len(all), PageNumber: page, PageSize: size}
	out.VSwitches.VSwitch = paginate(all, page, size)
	return out, nil
}

func (s *Simulator) describeRouteTableList(c *call) (any, *apiError) {
	page, size, aerr := parsePage(c, maxRouteTablePage)
	if aerr != nil {
		return nil, aerr
	}
	routerID := c.get("RouterId")
	if routerID == "" {
		routerID = c.get("VRouterId")
	}
	if rt := c.get("RouterType"); rt != "" && rt != "VRouter" {
		return nil, errorf(CodeInvalidParameter, "the simulator models RouterType VRouter only.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type tableJSON struct {
		VpcID          string `json:"VpcId"`
		RouteTableID   string `json:"RouteTableId"`
		RouteTableType string `json:"RouteTableType"`
		RouteTableName string `json:"RouteTableName"`
		RouterID       string `json:"RouterId"`
		RouterType     string `json:"RouterType"`
		Status         string `json:"Status"`
		AssociateType  string `json:"AssociateType"`
		Description    string `json:"Description"`
		CreationTime   string `json:"CreationTime"`
		VSwitchIDs     struct {
			VSwitchID []string `json:"VSwitchId"`
		} `json:"VSwitchIds"`
	}
	var all []tableJSON
	for _, id := range sortedKeys(s.st.tables) {
		t := s.st.tables[id]
		v := s.st.vpcs[t.VPCID]
		if (c.has("VpcId") && c.get("VpcId") != t.VPCID) || (c.has("RouteTableId") && c.get("RouteTableId") != t.ID) ||
			(c.has("RouteTableType") && c.get("RouteTableType") != t.Type) || (routerID != "" && routerID != v.VRouterID) ||
			(c.has("RouteTableName") && c.get("RouteTableName") != t.Name) {
			continue
		}
		j := tableJSON{VpcID: t.VPCID, RouteTableID: t.ID, RouteTableType: t.Type, RouteTableName: t.Name, RouterID: v.VRouterID,
			RouterType: "VRouter", Status: "Available", AssociateType: "VSwitch", CreationTime: "2024-01-01T00:00:00Z"}
		j.VSwitchIDs.VSwitchID = []string{}
		for _, wid := range sortedKeys(s.st.vswitches) {
			if s.st.vswitches[wid].RouteTableID == t.ID {
				j.VSwitchIDs.VSwitchID = append(j.VSwitchIDs.VSwitchID, wid)
			}
		}
		all = append(all, j)
	}
	out := struct {
		Success         bool   `json:"Success"`
		Code            string `json:"Code"`
		Message         string `json:"Message"`
		TotalCount      int    `json:"TotalCount"`
		PageNumber      int    `json:"PageNumber"`
		PageSize        int    `json:"PageSize"`
		RouterTableList struct {
			RouterTableListType []tableJSON `json:"RouterTableListType"`
		} `json:"RouterTableList"`
	}{Success: true, Code: "200", Message: "successful", TotalCount: len(all), PageNumber: page, PageSize: size}
	out.RouterTableList.RouterTableListType = paginate(all, page, size)
	return out, nil
}

// encodeToken makes an opaque NextToken naming the next resource to return.
func encodeToken(kind, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + id))
}

func decodeToken(kind, tok string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), kind+":")
	return id, ok && id != ""
}

// parseNextToken returns the ID a NextToken of kind resumes from; "" without
// a token.
func parseNextToken(c *call, kind string) (string, *apiError) {
	tok := c.get("NextToken")
	if tok == "" {
		return "", nil
	}
	from, ok := decodeToken(kind, tok)
	if !ok {
		return "", errorf(CodeInvalidNextToken, "The specified NextToken is invalid.")
	}
	return from, nil
}

// entryTokenKind is the kind of DescribeRouteEntryList tokens; they carry
// their issue time after the entry ID, so that they can expire.
const entryTokenKind = "rte"

func encodeEntryToken(id string, issued time.Time) string {
	return encodeToken(entryTokenKind, id+"@"+strconv.FormatInt(issued.UnixNano(), 10))
}

// parseEntryToken returns the entry ID a DescribeRouteEntryList NextToken
// resumes from, answering the codes of the action's error table: a token
// the simulator did not issue is IllegalParam.NextToken, one older than
// Options.NextTokenTTL is IllegalParam.NextTokenExpired.
func (s *Simulator) parseEntryToken(c *call) (string, *apiError) {
	tok := c.get("NextToken")
	if tok == "" {
		return "", nil
	}
	raw, ok := decodeToken(entryTokenKind, tok)
	id, issuedStr, found := strings.Cut(raw, "@")
	issued, err := strconv.ParseInt(issuedStr, 10, 64)
	if !ok || !found || id == "" || err != nil {
		return "", errorf(CodeIllegalNextToken, "")
	}
	if ttl := s.opts.NextTokenTTL; ttl > 0 && c.now.Sub(time.Unix(0, issued)) > ttl {
		return "", errorf(CodeNextTokenExpired, "")
	}
	return id, nil
}

// parseMaxResult reads MaxResult. The reference page says 1 to 100, yet
// the Alibaba CCM sends 500 on every listing and works in production: the
// real service clamps a larger value to its page maximum, and so does the
// simulator.
func parseMaxResult(c *call) (int, *apiError) {
	v := c.get("MaxResult")
	if v == "" {
		return defaultEntryResults, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errorf(CodeInvalidParameter, "MaxResult must be a positive integer.")
	}
	return min(n, maxEntryResults), nil
}

func (s *Simulator) describeRouteEntryList(c *call) (any, *apiError) {
	tableID := c.get("RouteTableId")
	if tableID == "" {
		return nil, errorf(CodeMissingParameter, "RouteTableId is mandatory for this action.")
	}
	limit, aerr := parseMaxResult(c)
	if aerr != nil {
		return nil, aerr
	}
	from, aerr := s.parseEntryToken(c)
	if aerr != nil {
		return nil, aerr
	}
	var dstFilter map[netip.Prefix]bool
	for i := 1; ; i++ {
		v := c.get(fmt.Sprintf("DestCidrBlockList.%d", i))
		if v == "" {
			break
		}
		p, aerr := parseDestination(v)
		if aerr != nil {
			return nil, aerr
		}
		if dstFilter == nil {
			dstFilter = map[netip.Prefix]bool{}
		}
		dstFilter[p] = true
	}
	var dst netip.Prefix
	if v := c.get("DestinationCidrBlock"); v != "" {
		if dst, aerr = parseDestination(v); aerr != nil {
			return nil, aerr
		}
	}
	if v := c.get("IpVersion"); v != "" && !strings.EqualFold(v, "IPv4") && !strings.EqualFold(v, "IPv6") {
		return nil, errorf(CodeIllegalIPVersion, "IpVersion must be IPv4 or IPv6.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	if _, ok := s.st.tables[tableID]; !ok {
		return nil, errorf(CodeListTableNotFound, "")
	}
	var list []*RouteEntry
	for _, e := range s.st.byTable[tableID] {
		switch {
		case c.has("RouteEntryId") && c.get("RouteEntryId") != e.ID,
			c.has("RouteEntryType") && c.get("RouteEntryType") != e.Type,
			c.has("NextHopType") && c.get("NextHopType") != e.NextHopType,
			c.has("NextHopId") && c.get("NextHopId") != e.NextHopID,
			c.has("RouteEntryName") && c.get("RouteEntryName") != e.Name,
			c.has("IpVersion") && !strings.EqualFold(c.get("IpVersion"), ipVersion(e.Destination)),
			dst.IsValid() && dst != e.Destination,
			dstFilter != nil && !dstFilter[e.Destination],
			from != "" && e.ID < from:
			continue
		}
		list = append(list, e)
	}
	sortEntries(list)
	out := struct {
		NextToken   string `json:"NextToken"`
		RouteEntrys struct {
			RouteEntry []routeEntryJSON `json:"RouteEntry"`
		} `json:"RouteEntrys"`
	}{}
	out.RouteEntrys.RouteEntry = []routeEntryJSON{}
	for i, e := range list {
		if i == limit {
			out.NextToken = encodeEntryToken(e.ID, c.now)
			break
		}
		out.RouteEntrys.RouteEntry = append(out.RouteEntrys.RouteEntry, s.entryJSON(e))
	}
	return out, nil
}

// --- write actions ---

func (s *Simulator) createRouteEntry(c *call) (any, *apiError) {
	tableID := c.get("RouteTableId")
	if tableID == "" {
		return nil, errorf(CodeMissingParameter, "RouteTableId is mandatory for this action.")
	}
	if c.get("DestinationCidrBlock") == "" {
		return nil, errorf(CodeMissingParameter, "DestinationCidrBlock is mandatory for this action.")
	}
	if c.has("NextHopList.1.NextHopId") {
		return nil, errorf(CodeInvalidParameter, "the simulator does not model ECMP NextHopList.")
	}
	dst, aerr := parseDestination(c.get("DestinationCidrBlock"))
	if aerr != nil {
		return nil, aerr
	}
	hopType := c.get("NextHopType")
	if hopType == "" {
		hopType = NextHopInstance
	}
	name, desc := c.get("RouteEntryName"), c.get("Description")
	if aerr := validateNameDescription(name, desc); aerr != nil {
		return nil, aerr
	}
	type resp struct {
		RouteEntryID string `json:"RouteEntryId"`
	}
	s.lockForWrite(c)
	defer s.mu.Unlock()
	token := c.get("ClientToken")
	fingerprint := strings.Join([]string{tableID, dst.String(), hopType, c.get("NextHopId"), name, desc}, "\x00")
	if token != "" {
		key := c.cred.ID + "/" + token
		if rec, ok := s.clientTokens[key]; ok && c.now.Sub(rec.at) < clientTokenTTL {
			if rec.fingerprint != fingerprint {
				return nil, errorf(CodeIdempotentMismatch, "The ClientToken was used with different parameters.")
			}
			return resp{RouteEntryID: rec.entryID}, nil
		}
	}
	t, ok := s.st.tables[tableID]
	if !ok {
		return nil, errorf(CodeRouteTableNotFound, "")
	}
	vpc := s.st.vpcs[t.VPCID]
	if aerr := s.checkDestinationLocked(vpc, dst); aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkNextHopLocked(vpc, hopType, c.get("NextHopId")); aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkIPv6HopLocked(dst, c.get("NextHopId")); aerr != nil {
		return nil, aerr
	}
	if aerr := s.busyErrorLocked(vpc.ID, c.now); aerr != nil {
		return nil, aerr
	}
	if s.tableUnsettledLocked(tableID) {
		return nil, errorf(CodeIncorrectRouteEntryStatus, "The route table has entries in the Pending or Modifying state.")
	}
	if s.st.findByDestination(tableID, dst) != nil {
		return nil, errorf(CodeCidrDuplicate, "")
	}
	if s.customCountLocked(tableID) >= s.quotaLocked(tableID) {
		return nil, errorf(CodeQuotaExceeded, "")
	}
	until := s.startWriteLocked(vpc.ID, c.now, s.writeDuration(1))
	e := &RouteEntry{ID: s.newID("rte-"), TableID: tableID, Destination: dst, Type: EntryTypeCustom, NextHopType: hopType,
		NextHopID: c.get("NextHopId"), Name: name, Description: desc, Status: StatusPending, Until: until, Created: c.now}
	s.st.addEntry(e)
	if token != "" {
		if len(s.clientTokens) >= 4096 {
			for k, rec := range s.clientTokens {
				if c.now.Sub(rec.at) >= clientTokenTTL {
					delete(s.clientTokens, k)
				}
			}
		}
		s.clientTokens[c.cred.ID+"/"+token] = clientTokenRecord{fingerprint: fingerprint, entryID: e.ID, at: c.now}
	}
	return resp{RouteEntryID: e.ID}, nil
}

// batchParams returns the RouteEntries.N.* parameters grouped by N, in
// order of N.
func batchParams(c *call) ([]map[string]string, *apiError) {
	byN := map[int]map[string]string{}
	for k, vs := range c.params {
		rest, ok := strings.CutPrefix(k, "RouteEntries.")
		if !ok {
			continue
		}
		nStr, field, ok := strings.Cut(rest, ".")
		n, err := strconv.Atoi(nStr)
		if !ok || err != nil || n < 1 {
			return nil, errorf(CodeInvalidParameter, "malformed parameter %q.", k)
		}
		if byN[n] == nil {
			byN[n] = map[string]string{}
		}
		byN[n][field] = vs[0]
	}
	if len(byN) == 0 {
		return nil, errorf(CodeMissingParameter, "RouteEntries is mandatory for this action.")
	}
	if len(byN) > maxBatchEntries {
		return nil, errorf(CodeInvalidParameter, "RouteEntries accepts at most %d entries, got %d.", maxBatchEntries, len(byN))
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	out := make([]map[string]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, byN[n])
	}
	return out, nil
}

func (s *Simulator) createRouteEntries(c *call) (any, *apiError) {
	items, aerr := batchParams(c)
	if aerr != nil {
		return nil, aerr
	}
	for _, it := range items {
		if it["RouteTableId"] == "" {
			return nil, errorf(CodeMissingRouteTableID, "The parameter RouteTableId is missing.")
		}
		if it["DstCidrBlock"] == "" {
			return nil, errorf(CodeMissingParameter, "RouteEntries.N.DstCidrBlock is mandatory for this action.")
		}
		if it["Description"] == "" {
			it["Description"] = it["Describption"] // the SDK's misspelled twin field
		}
		if aerr := validateNameDescription(it["Name"], it["Description"]); aerr != nil {
			return nil, aerr
		}
		if v := it["IpVersion"]; v != "" && !s.ipVersionAccepted(v) {
			return nil, errorf(CodeIllegalIPVersion, "IpVersion %q is not accepted (encoding %s).", v, s.opts.IPVersionEncoding)
		}
	}
	s.lockForWrite(c)
	defer s.mu.Unlock()
	var vpc *VPC
	for _, it := range items {
		t, ok := s.st.tables[it["RouteTableId"]]
		if !ok {
			return nil, errorf(CodeRouteTableNotFound, "%s", it["RouteTableId"])
		}
		if vpc != nil && vpc.ID != t.VPCID {
			return nil, errorf(CodeInvalidParameter, "all RouteEntries must belong to route tables of one VPC.")
		}
		vpc = s.st.vpcs[t.VPCID]
	}
	if aerr := s.busyErrorLocked(vpc.ID, c.now); aerr != nil {
		return nil, aerr
	}
	out := struct {
		SuccessCount       int               `json:"SuccessCount"`
		FailedCount        int               `json:"FailedCount"`
		RouteEntryIDs      []string          `json:"RouteEntryIds"`
		FailedRouteEntries []failedEntryJSON `json:"FailedRouteEntries"`
	}{RouteEntryIDs: []string{}, FailedRouteEntries: []failedEntryJSON{}}
	var created []*RouteEntry
	custom := map[string]int{} // custom entries per table, counted once, plus those created so far
	for _, it := range items {
		fail := func(code, msg string) {
			out.FailedRouteEntries = append(out.FailedRouteEntries, failedEntryJSON{DstCidrBlock: it["DstCidrBlock"], NextHop: it["NextHop"], FailedCode: code, FailedMessage: msg})
		}
		table := it["RouteTableId"]
		dst, aerr := parseDestination(it["DstCidrBlock"])
		if aerr != nil {
			fail(FailedCidrInvalid, aerr.Message)
			continue
		}
		if v := it["IpVersion"]; v != "" && parseBatchIPVersion(v) != ipVersion(dst) {
			fail(FailedCidrInvalid, fmt.Sprintf("IpVersion %s does not match %s.", v, dst))
			continue
		}
		if aerr := s.checkDestinationLocked(vpc, dst); aerr != nil {
			fail(FailedCidrInvalid, aerr.Code+": "+aerr.Message)
			continue
		}
		hopType := it["NextHopType"]
		if hopType == "" {
			hopType = NextHopInstance
		}
		if aerr := s.checkNextHopLocked(vpc, hopType, it["NextHop"]); aerr != nil {
			fail(FailedNextHopNotExist, aerr.Code+": "+aerr.Message)
			continue
		}
		if aerr := s.checkIPv6HopLocked(dst, it["NextHop"]); aerr != nil {
			fail(aerr.Code, aerr.Message)
			continue
		}
		if e := s.st.findByDestination(table, dst); e != nil && e.Status != StatusAvailable {
			fail(FailedEntryStatus, "route entry status is "+e.Status)
			continue
		}
		if s.st.findByDestination(table, dst) != nil || slices.ContainsFunc(created, func(e *RouteEntry) bool { return e.TableID == table && e.Destination == dst }) {
			fail(FailedCidrDuplicate, "Specified CIDR block is already exists, entry.cidrBlock="+dst.String())
			continue
		}
		n, counted := custom[table]
		if !counted {
			n = s.customCountLocked(table)
		}
		if n >= s.quotaLocked(table) {
			fail(FailedQuota, defaultMessage[CodeQuotaExceeded])
			continue
		}
		custom[table] = n + 1
		created = append(created, &RouteEntry{ID: s.newID("rte-"), TableID: table, Destination: dst, Type: EntryTypeCustom,
			NextHopType: hopType, NextHopID: it["NextHop"], Name: it["Name"], Description: it["Description"], Status: StatusPending, Created: c.now})
	}
	if len(created) > 0 {
		until := s.startWriteLocked(vpc.ID, c.now, s.writeDuration(len(created)))
		for _, e := range created {
			e.Until = until
			s.st.addEntry(e)
			out.RouteEntryIDs = append(out.RouteEntryIDs, e.ID)
		}
	}
	out.SuccessCount, out.FailedCount = len(created), len(out.FailedRouteEntries)
	return out, nil
}

// lookupEntryLocked finds an entry by ID, or by table + destination
// (+ next hop when given).
func (s *Simulator) lookupEntryLocked(id, table, dstStr, hop string) (*RouteEntry, *apiError) {
	if id != "" {
		e, ok := s.st.entries[id]
		if !ok || (table != "" && e.TableID != table) {
			return nil, errorf(CodeRouteEntryNotFound, "")
		}
		return e, nil
	}
	if table == "" || dstStr == "" {
		return nil, errorf(CodeMissingParameter, "RouteEntryId, or RouteTableId and DestinationCidrBlock, are mandatory for this action.")
	}
	dst, aerr := parseDestination(dstStr)
	if aerr != nil {
		return nil, aerr
	}
	if _, ok := s.st.tables[table]; !ok {
		return nil, errorf(CodeRouteTableNotFound, "")
	}
	e := s.st.findByDestination(table, dst)
	if e == nil || (hop != "" && e.NextHopID != hop) {
		return nil, errorf(CodeRouteEntryNotFound, "")
	}
	return e, nil
}

// deleteRouteEntry answers the codes of DeleteRouteEntry's error table: an
// entry named by table and destination that does not exist is
// InvalidRouteEntry.NotFound (what the CCM and Terraform check for), one
// named by ID InvalidRouteEntryId.NotFound, both 400; a system entry is
// OperationDenied; naming the entry both ways is
// ParamExclusive.RouteEntryIdAndRouteTableIdOrDestCidrBlock.
func (s *Simulator) deleteRouteEntry(c *call) (any, *apiError) {
	byID := c.get("RouteEntryId") != ""
	if byID && c.get("DestinationCidrBlock") != "" {
		return nil, errorf(CodeDeleteParamExclusive, "RouteEntryId excludes RouteTableId and DestinationCidrBlock.")
	}
	s.lockForWrite(c)
	defer s.mu.Unlock()
	e, aerr := s.lookupEntryLocked(c.get("RouteEntryId"), c.get("RouteTableId"), c.get("DestinationCidrBlock"), c.get("NextHopId"))
	if aerr != nil {
		if aerr.Code == CodeRouteEntryNotFound && !byID {
			aerr = errorf(CodeDeleteEntryNotFound, "")
		}
		return nil, aerr
	}
	if e.Type == EntryTypeSystem {
		return nil, errorf(CodeOperationDenied, "")
	}
	if e.Status != StatusAvailable {
		return nil, errorf(CodeIncorrectRouteEntryStatus, "Entry %s is %s.", e.ID, e.Status)
	}
	vpcID := s.st.tables[e.TableID].VPCID
	if aerr := s.busyErrorLocked(vpcID, c.now); aerr != nil {
		return nil, aerr
	}
	if s.tableUnsettledLocked(e.TableID) {
		return nil, errorf(CodeIncorrcetRouteEntryStatus, "The route table has entries in the Pending or Modifying state.")
	}
	e.Status, e.Until = StatusDeleting, s.startWriteLocked(vpcID, c.now, s.writeDuration(1))
	return struct{}{}, nil
}

func (s *Simulator) deleteRouteEntries(c *call) (any, *apiError) {
	items, aerr := batchParams(c)
	if aerr != nil {
		return nil, aerr
	}
	s.lockForWrite(c)
	defer s.mu.Unlock()
	type target struct {
		item  map[string]string
		entry *RouteEntry
		err   *apiError
	}
	targets := make([]target, 0, len(items))
	vpcID := ""
	for _, it := range items {
		e, aerr := s.lookupEntryLocked(it["RouteEntryId"], it["RouteTableId"], it["DstCidrBlock"], it["NextHop"])
		if aerr != nil && aerr.Code == CodeMissingParameter {
			return nil, aerr
		}
		if e != nil {
			v := s.st.tables[e.TableID].VPCID
			if vpcID != "" && v != vpcID {
				return nil, errorf(CodeInvalidParameter, "all RouteEntries must belong to route tables of one VPC.")
			}
			vpcID = v
		}
		targets = append(targets, target{item: it, entry: e, err: aerr})
	}
	if vpcID != "" {
		if aerr := s.busyErrorLocked(vpcID, c.now); aerr != nil {
			return nil, aerr
		}
	}
	out := struct {
		SuccessCount       int               `json:"SuccessCount"`
		FailedCount        int               `json:"FailedCount"`
		FailedRouteEntries []failedEntryJSON `json:"FailedRouteEntries"`
	}{FailedRouteEntries: []failedEntryJSON{}}
	var deleting []*RouteEntry
	for _, t := range targets {
		f := failedEntryJSON{RouteEntryID: t.item["RouteEntryId"], DstCidrBlock: t.item["DstCidrBlock"], NextHop: t.item["NextHop"]}
		switch {
		case t.entry == nil:
			f.FailedCode, f.FailedMessage = FailedEntryNotExist, "vRouterEntry not exists"
		case t.entry.Type == EntryTypeSystem:
			f.FailedCode, f.FailedMessage = FailedSystemEntry, "System route entries cannot be deleted."
		case t.entry.Status != StatusAvailable || slices.Contains(deleting, t.entry):
			f.FailedCode, f.FailedMessage = FailedEntryStatus, "route entry status is "+t.entry.Status
		default:
			deleting = append(deleting, t.entry)
			continue
		}
		out.FailedRouteEntries = append(out.FailedRouteEntries, f)
	}
	if len(deleting) > 0 {
		until := s.startWriteLocked(vpcID, c.now, s.writeDuration(len(deleting)))
		for _, e := range deleting {
			e.Status, e.Until = StatusDeleting, until
		}
	}
	out.SuccessCount, out.FailedCount = len(deleting), len(out.FailedRouteEntries)
	return out, nil
}

func (s *Simulator) modifyRouteEntry(c *call) (any, *apiError) {
	id := c.get("RouteEntryId")
	if id == "" {
		return nil, errorf(CodeMissingParameter, "RouteEntryId is mandatory for this action.")
	}
	s.lockForWrite(c)
	defer s.mu.Unlock()
	e, ok := s.st.entries[id]
	if !ok {
		return nil, errorf(CodeRouteEntryNotFound, "")
	}
	name, desc := e.Name, e.Description
	if c.params.Has("RouteEntryName") {
		name = c.get("RouteEntryName")
	}
	if c.params.Has("Description") {
		desc = c.get("Description")
	}
	if aerr := validateNameDescription(name, desc); aerr != nil {
		return nil, aerr
	}
	t := s.st.tables[e.TableID]
	hop := e.NextHopID
	if c.has("NewNextHopId") {
		if e.Type == EntryTypeSystem {
			return nil, errorf(CodeSystemEntry, "The next hop of a system route entry cannot be changed.")
		}
		hopType := c.get("NewNextHopType")
		if hopType == "" {
			hopType = NextHopInstance
		}
		if aerr := s.checkNextHopLocked(s.st.vpcs[t.VPCID], hopType, c.get("NewNextHopId")); aerr != nil {
			return nil, aerr
		}
		hop = c.get("NewNextHopId")
	}
	if e.Status != StatusAvailable {
		return nil, errorf(CodeIncorrectRouteEntryStatus, "Entry %s is %s.", e.ID, e.Status)
	}
	if aerr := s.busyErrorLocked(t.VPCID, c.now); aerr != nil {
		return nil, aerr
	}
	e.Name, e.Description, e.NextHopID = name, desc, hop
	e.Status, e.Until = StatusModifying, s.startWriteLocked(t.VPCID, c.now, s.writeDuration(1))
	e.Created = c.now
	return struct{}{}, nil
}
