package alisim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/sts"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// admin performs an admin API request and decodes the JSON answer into out
// (when not nil), failing the test if the status differs from want.
func admin(t *testing.T, ts *alisim.TestServer, method, path string, body any, want int, out any) {
	t.Helper()
	var rd bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&rd).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, ts.AdminURL+path, &rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("%s %s: decoding: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	ts := start(t, instant)
	c := vpcClient(t, ts, testCred())

	t.Run("state round trip", func(t *testing.T) {
		var st alisim.State
		admin(t, ts, http.MethodGet, "/admin/state", nil, http.StatusOK, &st)
		if st.Region != region || len(st.Instances) != 3 || len(st.Entries) != 3 {
			t.Fatalf("dumped state: region %s, %d instances, %d entries", st.Region, len(st.Instances), len(st.Entries))
		}
		st.Instances = st.Instances[:1]
		st.Entries = append(st.Entries, alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.0.0/24"), NextHopID: st.Instances[0].ID})
		admin(t, ts, http.MethodPut, "/admin/state", st, http.StatusOK, nil)
		if got := customEntries(t, ts.Sim, tableID); len(got) != 1 || got["10.244.0.0/24"].Status != alisim.StatusAvailable {
			t.Fatalf("loaded entries = %+v", got)
		}
		bad := st
		bad.Instances = []alisim.Instance{{ID: "i-x", VSwitchID: "vsw-missing"}}
		admin(t, ts, http.MethodPut, "/admin/state", bad, http.StatusBadRequest, nil)
		admin(t, ts, http.MethodPut, "/admin/state", alisim.DefaultState(), http.StatusOK, nil)
	})
	t.Run("routes out of band", func(t *testing.T) {
		var e alisim.RouteEntry
		admin(t, ts, http.MethodPost, "/admin/routes", alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.5.0/24"), NextHopID: "i-2vcxxr", Name: "foreign"}, http.StatusOK, &e)
		admin(t, ts, http.MethodPost, "/admin/routes", alisim.RouteEntry{TableID: tableID, Destination: netip.MustParsePrefix("10.244.5.0/24"), NextHopID: "i-2vcxxs"}, http.StatusBadRequest, nil)
		admin(t, ts, http.MethodPost, "/admin/routes", alisim.RouteEntry{TableID: "vtb-none", Destination: netip.MustParsePrefix("10.244.6.0/24")}, http.StatusNotFound, nil)
		name, hop, status := "renamed", "i-2vcxxt", alisim.StatusPending
		admin(t, ts, http.MethodPatch, "/admin/routes/"+e.ID, alisim.RouteEdit{Name: &name, NextHopID: &hop, Status: &status}, http.StatusOK, nil)
		var routes []alisim.RouteEntry
		admin(t, ts, http.MethodGet, "/admin/routes?table="+tableID, nil, http.StatusOK, &routes)
		found := false
		for _, r := range routes {
			if r.ID == e.ID {
				found = r.Name == "renamed" && r.NextHopID == "i-2vcxxt" && r.Status == alisim.StatusPending
			}
		}
		if !found {
			t.Fatalf("patched entry not as expected in %+v", routes)
		}
		// The SDK sees out-of-band changes.
		resp, err := c.DescribeRouteEntryList(func() *vpc.DescribeRouteEntryListRequest {
			r := describeReq()
			r.RouteEntryId = e.ID
			return r
		}())
		if err != nil || len(resp.RouteEntrys.RouteEntry) != 1 || resp.RouteEntrys.RouteEntry[0].Status != alisim.StatusPending {
			t.Fatalf("SDK view of the patched entry: %+v %v", resp, err)
		}
		admin(t, ts, http.MethodDelete, "/admin/routes/"+e.ID, nil, http.StatusOK, nil)
		admin(t, ts, http.MethodDelete, "/admin/routes/"+e.ID, nil, http.StatusNotFound, nil)
		admin(t, ts, http.MethodGet, "/admin/routes?table=vtb-none", nil, http.StatusNotFound, nil)
	})
	t.Run("instances", func(t *testing.T) {
		var added []alisim.Instance
		admin(t, ts, http.MethodPost, "/admin/instances", map[string]any{"count": 5}, http.StatusOK, &added)
		if len(added) != 5 {
			t.Fatalf("added %d instances", len(added))
		}
		admin(t, ts, http.MethodPatch, "/admin/instances/"+added[0].ID, map[string]string{"status": "Stopped"}, http.StatusOK, nil)
		admin(t, ts, http.MethodPatch, "/admin/instances/"+added[0].ID, map[string]string{"status": "Melted"}, http.StatusBadRequest, nil)
		admin(t, ts, http.MethodDelete, "/admin/instances/"+added[1].ID, nil, http.StatusOK, nil)
		var list []alisim.Instance
		admin(t, ts, http.MethodGet, "/admin/instances", nil, http.StatusOK, &list)
		byID := map[string]alisim.Instance{}
		for _, in := range list {
			byID[in.ID] = in
		}
		if byID[added[0].ID].Status != alisim.InstanceStopped || len(list) != 7 {
			t.Fatalf("instances after stop and release: %+v", list)
		}
		if _, ok := byID[added[1].ID]; ok {
			t.Fatal("released instance still listed")
		}
	})
	t.Run("tables, quota, busy", func(t *testing.T) {
		var vsw alisim.VSwitch
		admin(t, ts, http.MethodPost, "/admin/vswitches", alisim.VSwitch{VPCID: vpcID, CIDR: netip.MustParsePrefix("192.168.1.0/24")}, http.StatusOK, &vsw)
		var tbl alisim.RouteTable
		admin(t, ts, http.MethodPost, "/admin/tables", map[string]any{"vpcId": vpcID, "name": "custom", "vswitchIds": []string{vsw.ID}}, http.StatusOK, &tbl)
		if tbl.Type != alisim.TableTypeCustom {
			t.Fatalf("added table = %+v", tbl)
		}
		admin(t, ts, http.MethodPut, "/admin/tables/"+tbl.ID+"/quota", map[string]int{"quota": 1}, http.StatusOK, nil)
		req := vpc.CreateCreateRouteEntryRequest()
		req.RouteTableId, req.DestinationCidrBlock, req.NextHopId = tbl.ID, "10.244.8.0/24", "i-2vcxxr"
		if _, err := c.CreateRouteEntry(req); err != nil {
			t.Fatalf("create in the custom table: %v", err)
		}
		req = vpc.CreateCreateRouteEntryRequest()
		req.RouteTableId, req.DestinationCidrBlock, req.NextHopId = tbl.ID, "10.244.9.0/24", "i-2vcxxr"
		_, err := c.CreateRouteEntry(req)
		wantServerError(t, err, alisim.CodeQuotaExceeded, http.StatusBadRequest)
		admin(t, ts, http.MethodPut, "/admin/vpcs/"+vpcID+"/busy", map[string]bool{"busy": true}, http.StatusOK, nil)
		_, err = createEntry(t, c, "10.244.10.0/24", "i-2vcxxr")
		wantServerError(t, err, alisim.CodeTaskConflict, http.StatusBadRequest)
		admin(t, ts, http.MethodPut, "/admin/vpcs/"+vpcID+"/busy", map[string]bool{"busy": false}, http.StatusOK, nil)
		admin(t, ts, http.MethodPut, "/admin/vpcs/vpc-none/busy", map[string]bool{"busy": true}, http.StatusNotFound, nil)
	})
	t.Run("faults, throttles, counters", func(t *testing.T) {
		admin(t, ts, http.MethodDelete, "/admin/counters", nil, http.StatusOK, nil)
		var faults []alisim.Fault
		admin(t, ts, http.MethodPost, "/admin/faults", alisim.Fault{Action: "DescribeRouteEntryList", Code: "SystemBusy", Count: 1}, http.StatusOK, &faults)
		if len(faults) != 1 || faults[0].Count != 1 {
			t.Fatalf("faults = %+v", faults)
		}
		_, err := c.DescribeRouteEntryList(describeReq())
		wantServerError(t, err, "SystemBusy", http.StatusBadRequest)
		if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
			t.Fatal(err)
		}
		admin(t, ts, http.MethodPut, "/admin/throttles", alisim.Throttle{Action: "DescribeVpcs", QPS: 0.001, Burst: 1}, http.StatusOK, nil)
		admin(t, ts, http.MethodPut, "/admin/throttles", alisim.Throttle{QPS: 1, Burst: 1}, http.StatusBadRequest, nil)
		if _, err := c.DescribeVpcs(vpc.CreateDescribeVpcsRequest()); err != nil {
			t.Fatal(err)
		}
		_, err = c.DescribeVpcs(vpc.CreateDescribeVpcsRequest())
		wantServerError(t, err, alisim.CodeThrottlingUser, http.StatusBadRequest)
		var counters map[string]map[string]int
		admin(t, ts, http.MethodGet, "/admin/counters", nil, http.StatusOK, &counters)
		if counters["DescribeRouteEntryList"]["SystemBusy"] != 1 || counters["DescribeRouteEntryList"]["Success"] != 1 ||
			counters["DescribeVpcs"]["Success"] != 1 || counters["DescribeVpcs"][alisim.CodeThrottlingUser] != 1 {
			t.Fatalf("counters = %v", counters)
		}
		admin(t, ts, http.MethodPut, "/admin/throttles", alisim.Throttle{Action: "DescribeVpcs"}, http.StatusOK, nil)
		var throttles []alisim.Throttle
		admin(t, ts, http.MethodGet, "/admin/throttles", nil, http.StatusOK, &throttles)
		if len(throttles) != 0 {
			t.Fatalf("throttles after removal = %+v", throttles)
		}
		admin(t, ts, http.MethodDelete, "/admin/faults", nil, http.StatusOK, &faults)
		if len(faults) != 0 {
			t.Fatalf("faults after clearing = %+v", faults)
		}
	})
	t.Run("access keys and OIDC tokens", func(t *testing.T) {
		admin(t, ts, http.MethodPost, "/admin/accesskeys", alisim.AccessKey{ID: "LTAIadmin", Secret: "s3", AllowedActions: []string{"vpc:DescribeVpcs"}}, http.StatusOK, nil)
		admin(t, ts, http.MethodPost, "/admin/accesskeys", alisim.AccessKey{ID: "LTAIbad"}, http.StatusBadRequest, nil)
		k := vpcClient(t, ts, credentials.NewAccessKeyCredential("LTAIadmin", "s3"))
		if _, err := k.DescribeVpcs(vpc.CreateDescribeVpcsRequest()); err != nil {
			t.Fatalf("key added over the admin API: %v", err)
		}
		admin(t, ts, http.MethodPost, "/admin/oidc-tokens", map[string]string{"token": "tok-1", "providerArn": alisim.DefaultOIDCProviderARN}, http.StatusOK, nil)
		req := sts.CreateAssumeRoleWithOIDCRequest()
		req.RoleArn, req.OIDCProviderArn, req.OIDCToken, req.RoleSessionName = alisim.DefaultRoleARN, alisim.DefaultOIDCProviderARN, "tok-1", "s"
		if _, err := stsClient(t, ts, anonymous()).AssumeRoleWithOIDC(req); err != nil {
			t.Fatalf("token registered over the admin API: %v", err)
		}
	})
	t.Run("malformed body", func(t *testing.T) {
		admin(t, ts, http.MethodPost, "/admin/faults", map[string]any{"nonsense": true}, http.StatusBadRequest, nil)
	})
}

func TestRouteTablesVpcsVSwitches(t *testing.T) {
	ts := start(t, instant)
	var custom []alisim.RouteTable
	for range 3 {
		tb, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: vpcID})
		if err != nil {
			t.Fatal(err)
		}
		custom = append(custom, tb)
	}
	vsw, err := ts.Sim.AddVSwitch(alisim.VSwitch{VPCID: vpcID, CIDR: netip.MustParsePrefix("192.168.2.0/24"), RouteTableID: custom[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	c := vpcClient(t, ts, testCred())
	list := vpc.CreateDescribeRouteTableListRequest()
	list.VpcId = vpcID
	list.PageSize = "2"
	resp, err := c.DescribeRouteTableList(list)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalCount != 4 || len(resp.RouterTableList.RouterTableListType) != 2 || !resp.Success {
		t.Fatalf("first page: TotalCount %d, %d tables", resp.TotalCount, len(resp.RouterTableList.RouterTableListType))
	}
	list = vpc.CreateDescribeRouteTableListRequest()
	list.RouteTableType = "System"
	resp, err = c.DescribeRouteTableList(list)
	if err != nil {
		t.Fatal(err)
	}
	sys := resp.RouterTableList.RouterTableListType
	if len(sys) != 1 || sys[0].RouteTableId != tableID || sys[0].RouterId != alisim.DefaultVRouterID || sys[0].RouterType != "VRouter" ||
		len(sys[0].VSwitchIds.VSwitchId) != 1 || sys[0].VSwitchIds.VSwitchId[0] != alisim.DefaultVSwitchID {
		t.Fatalf("system table = %+v", sys)
	}
	list = vpc.CreateDescribeRouteTableListRequest()
	list.PageSize = "51"
	_, err = c.DescribeRouteTableList(list)
	wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)

	// Every table, custom ones included, holds the local routes of every
	// vSwitch of the VPC, as the real VPC shows them.
	for _, table := range []string{tableID, custom[0].ID} {
		locals := map[string]bool{}
		for _, e := range listAll(t, c, table, 0) {
			if e.Type == "System" && e.NextHopType == "local" {
				locals[e.DestinationCidrBlock] = true
			}
		}
		if len(locals) != 3 || !locals["192.168.0.0/24"] || !locals["2408:4005:3a0:1000::/64"] || !locals["192.168.2.0/24"] {
			t.Fatalf("local entries of table %s = %v, want both vSwitches' CIDRs", table, locals)
		}
	}
	vpcs, err := c.DescribeVpcs(vpc.CreateDescribeVpcsRequest())
	if err != nil {
		t.Fatal(err)
	}
	v := vpcs.Vpcs.Vpc[0]
	if vpcs.TotalCount != 1 || v.VpcId != vpcID || v.CidrBlock != "192.168.0.0/16" || v.VRouterId != alisim.DefaultVRouterID ||
		len(v.RouterTableIds.RouterTableIds) != 4 || len(v.VSwitchIds.VSwitchId) != 2 || !v.EnabledIpv6 {
		t.Fatalf("vpc = %+v", v)
	}
	vsws := vpc.CreateDescribeVSwitchesRequest()
	vsws.RouteTableId = custom[0].ID
	vresp, err := c.DescribeVSwitches(vsws)
	if err != nil {
		t.Fatal(err)
	}
	if vresp.TotalCount != 1 || vresp.VSwitches.VSwitch[0].VSwitchId != vsw.ID || vresp.VSwitches.VSwitch[0].RouteTable.RouteTableType != "Custom" {
		t.Fatalf("vswitches = %+v", vresp.VSwitches.VSwitch)
	}
}
