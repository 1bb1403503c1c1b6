package alisim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// shippedPolicy reads deploy/ram-policy.json (or a variant) of the
// repository.
func shippedPolicy(t *testing.T, name string) *alisim.Policy {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	p, err := alisim.ParsePolicy(raw)
	if err != nil {
		t.Fatalf("deploy/%s: %v", name, err)
	}
	return p
}

func mustPolicy(t *testing.T, doc string) *alisim.Policy {
	t.Helper()
	p, err := alisim.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatalf("policy %s: %v", doc, err)
	}
	return p
}

// without returns the policy with action removed from every statement.
func without(t *testing.T, p *alisim.Policy, action string) *alisim.Policy {
	t.Helper()
	raw, _ := json.Marshal(p)
	var out alisim.Policy
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for i := range out.Statement {
		var kept []string
		for _, a := range out.Statement[i].Action {
			if a == action {
				found = true
				continue
			}
			kept = append(kept, a)
		}
		out.Statement[i].Action = kept
	}
	if !found {
		t.Fatalf("the policy does not grant %s", action)
	}
	var sts []alisim.Statement
	for _, st := range out.Statement {
		if len(st.Action) > 0 {
			sts = append(sts, st)
		}
	}
	out.Statement = sts
	return &out
}

func describeInstancesReq(dryRun bool, ids ...string) *ecs.DescribeInstancesRequest {
	r := ecs.CreateDescribeInstancesRequest()
	if len(ids) > 0 {
		raw, _ := json.Marshal(ids)
		r.InstanceIds = string(raw)
	}
	if dryRun {
		r.DryRun = requests.NewBoolean(true)
	}
	return r
}

func TestParsePolicyRefusesWhatIsNotModelled(t *testing.T) {
	for name, doc := range map[string]string{
		"condition":    `{"Version":"1","Statement":[{"Effect":"Allow","Action":"vpc:*","Resource":"*","Condition":{}}]}`,
		"not action":   `{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"vpc:*","Resource":"*"}]}`,
		"version":      `{"Version":"2","Statement":[{"Effect":"Allow","Action":"vpc:*","Resource":"*"}]}`,
		"effect":       `{"Version":"1","Statement":[{"Effect":"allow!","Action":"vpc:*","Resource":"*"}]}`,
		"no resource":  `{"Version":"1","Statement":[{"Effect":"Allow","Action":"vpc:*"}]}`,
		"bare action":  `{"Version":"1","Statement":[{"Effect":"Allow","Action":"CreateRouteEntries","Resource":"*"}]}`,
		"no statement": `{"Version":"1","Statement":[]}`,
	} {
		if _, err := alisim.ParsePolicy([]byte(doc)); err == nil {
			t.Errorf("%s: policy accepted: %s", name, doc)
		}
	}
	// A single string stands for a one-element list, as in RAM.
	p := mustPolicy(t, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"vpc:Describe*","Resource":"*"}]}`)
	if len(p.Statement[0].Action) != 1 || p.Statement[0].Resource[0] != "*" {
		t.Fatalf("parsed %+v", p)
	}
}

// TestShippedPolicyAllowsWhatThePublisherCalls runs every action the
// publisher calls with the key bound to deploy/ram-policy.json.
func TestShippedPolicyAllowsWhatThePublisherCalls(t *testing.T) {
	ts := start(t, alisim.Options{RAMPolicy: shippedPolicy(t, "ram-policy.json")})
	v, e := vpcClient(t, ts, testCred()), ecsClient(t, ts, testCred())
	if _, err := v.DescribeVpcs(vpc.CreateDescribeVpcsRequest()); err != nil {
		t.Fatalf("DescribeVpcs: %v", err)
	}
	if _, err := v.DescribeRouteTableList(vpc.CreateDescribeRouteTableListRequest()); err != nil {
		t.Fatalf("DescribeRouteTableList: %v", err)
	}
	if _, err := v.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("DescribeRouteEntryList: %v", err)
	}
	resp, err := e.DescribeInstances(describeInstancesReq(false))
	if err != nil || resp.TotalCount != 3 {
		t.Fatalf("DescribeInstances: %v, %d instances", err, resp.TotalCount)
	}
	cr := vpc.CreateCreateRouteEntriesRequest()
	cr.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{{RouteTableId: tableID, DstCidrBlock: "10.0.1.0/24", NextHop: "i-2vcxxr", NextHopType: "Instance"}}
	if resp, err := v.CreateRouteEntries(cr); err != nil || resp.SuccessCount != 1 {
		t.Fatalf("CreateRouteEntries: %v %+v", err, resp)
	}
	// vpc:DescribeVSwitches is not granted: the publisher never calls it.
	_, err = v.DescribeVSwitches(vpc.CreateDescribeVSwitchesRequest())
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
}

func TestDescribeInstancesDenialShapes(t *testing.T) {
	policy := without(t, shippedPolicy(t, "ram-policy.json"), "ecs:DescribeInstances")
	t.Run("empty list by default", func(t *testing.T) {
		ts := start(t, alisim.Options{RAMPolicy: policy})
		e := ecsClient(t, ts, testCred())
		resp, err := e.DescribeInstances(describeInstancesReq(false, "i-2vcxxr"))
		if err != nil {
			t.Fatalf("a refused DescribeInstances must answer 200: %v", err)
		}
		if resp.GetHttpStatus() != http.StatusOK || resp.TotalCount != 0 || len(resp.Instances.Instance) != 0 {
			t.Fatalf("want an empty list, got %d instances (HTTP %d)", resp.TotalCount, resp.GetHttpStatus())
		}
		// DryRun tells the empty list of a refusal from a real one.
		_, err = e.DescribeInstances(describeInstancesReq(true, "i-2vcxxr"))
		se := serverError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
		if got := se.AccessDeniedDetail()["AuthAction"]; got != "ecs:DescribeInstances" {
			t.Errorf("AccessDeniedDetail.AuthAction = %v", got)
		}
	})
	t.Run("forbidden since 2025-12-20", func(t *testing.T) {
		ts := start(t, alisim.Options{RAMPolicy: policy, ECSDescribeDenial: alisim.ECSDenialForbidden})
		_, err := ecsClient(t, ts, testCred()).DescribeInstances(describeInstancesReq(false))
		se := serverError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
		if se.AccessDeniedDetail()["NoPermissionType"] != "ImplicitDeny" {
			t.Errorf("AccessDeniedDetail = %v", se.AccessDeniedDetail())
		}
	})
	t.Run("dry run allowed", func(t *testing.T) {
		ts := start(t, alisim.Options{RAMPolicy: shippedPolicy(t, "ram-policy.json")})
		_, err := ecsClient(t, ts, testCred()).DescribeInstances(describeInstancesReq(true))
		wantServerError(t, err, alisim.CodeDryRunOperation, http.StatusBadRequest)
		// Without any policy too: DryRun is a property of the action.
		ts = start(t, alisim.Options{})
		_, err = ecsClient(t, ts, testCred()).DescribeInstances(describeInstancesReq(true))
		wantServerError(t, err, alisim.CodeDryRunOperation, http.StatusBadRequest)
		_, err = vpcClient(t, ts, testCred()).DescribeVpcs(func() *vpc.DescribeVpcsRequest {
			r := vpc.CreateDescribeVpcsRequest()
			r.DryRun = requests.NewBoolean(true)
			return r
		}())
		wantServerError(t, err, alisim.CodeDryRunOperation, http.StatusBadRequest)
	})
}

func TestVPCDenialCodes(t *testing.T) {
	policy := without(t, shippedPolicy(t, "ram-policy.json"), "vpc:CreateRouteEntries")
	create := func() *vpc.CreateRouteEntriesRequest {
		r := vpc.CreateCreateRouteEntriesRequest()
		r.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{{RouteTableId: tableID, DstCidrBlock: "10.0.2.0/24", NextHop: "i-2vcxxr", NextHopType: "Instance"}}
		return r
	}
	for _, code := range []string{alisim.CodeForbiddenRAM, alisim.CodeForbbiden} {
		t.Run(code, func(t *testing.T) {
			ts := start(t, alisim.Options{RAMPolicy: policy, VPCDenialCode: code})
			_, err := vpcClient(t, ts, testCred()).CreateRouteEntries(create())
			se := serverError(t, err, code, http.StatusForbidden)
			if se.AccessDeniedDetail()["AuthAction"] != "vpc:CreateRouteEntries" {
				t.Errorf("AccessDeniedDetail = %v", se.AccessDeniedDetail())
			}
			routes, _ := ts.Sim.Routes(tableID)
			for _, r := range routes {
				if r.Destination.String() == "10.0.2.0/24" {
					t.Fatal("a refused write changed the table")
				}
			}
		})
	}
	if _, err := alisim.New(alisim.Options{VPCDenialCode: "Nope"}); err == nil {
		t.Fatal("an unknown denial code was accepted")
	}
}

func TestPolicyResourcesAndDeny(t *testing.T) {
	other := "vtb-2vc0000000000000other"
	ts := start(t, alisim.Options{RAMPolicy: mustPolicy(t, `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":["vpc:Describe*","ecs:DescribeInstances"],"Resource":"*"},
		{"Effect":"Allow","Action":["vpc:CreateRouteEntries","vpc:DeleteRouteEntries","vpc:ModifyRouteEntry"],"Resource":"acs:vpc:*:*:routetable/`+tableID+`"},
		{"Effect":"Allow","Action":"vpc:CreateRouteEntries","Resource":"acs:vpc:cn-chengdu:`+alisim.DefaultAccountID+`:routetable/`+other+`"},
		{"Effect":"Deny","Action":"vpc:create*","Resource":"acs:vpc:*:*:routetable/`+other+`"}
	]}`)})
	if _, err := ts.Sim.AddTable(alisim.RouteTable{ID: other, VPCID: vpcID, Type: alisim.TableTypeCustom}); err != nil {
		t.Fatal(err)
	}
	v := vpcClient(t, ts, testCred())
	create := func(table, dst string) error {
		r := vpc.CreateCreateRouteEntriesRequest()
		r.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{{RouteTableId: table, DstCidrBlock: dst, NextHop: "i-2vcxxr", NextHopType: "Instance"}}
		_, err := v.CreateRouteEntries(r)
		return err
	}
	if err := create(tableID, "10.0.3.0/24"); err != nil {
		t.Fatalf("a write on the granted table: %v", err)
	}
	// Deny wins over the Allow of the same table, and action names match
	// without regard to case.
	se := serverError(t, create(other, "10.0.4.0/24"), alisim.CodeForbiddenRAM, http.StatusForbidden)
	if se.AccessDeniedDetail()["NoPermissionType"] != "ExplicitDeny" {
		t.Errorf("AccessDeniedDetail = %v", se.AccessDeniedDetail())
	}
	// A batch spanning a granted and a refused table is refused whole.
	r := vpc.CreateCreateRouteEntriesRequest()
	r.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{
		{RouteTableId: tableID, DstCidrBlock: "10.0.5.0/24", NextHop: "i-2vcxxr", NextHopType: "Instance"},
		{RouteTableId: other, DstCidrBlock: "10.0.5.0/24", NextHop: "i-2vcxxr", NextHopType: "Instance"},
	}
	_, err := v.CreateRouteEntries(r)
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)

	// ModifyRouteEntry names an entry; RAM authorizes it on the entry's
	// route table.
	waitFor(t, "the entry to be Available", func() bool {
		routes, _ := ts.Sim.Routes(tableID)
		for _, e := range routes {
			if e.Destination.String() == "10.0.3.0/24" {
				return e.Status == alisim.StatusAvailable
			}
		}
		return false
	})
	var entryID string
	routes, _ := ts.Sim.Routes(tableID)
	for _, e := range routes {
		if e.Destination.String() == "10.0.3.0/24" {
			entryID = e.ID
		}
	}
	m := vpc.CreateModifyRouteEntryRequest()
	m.RouteEntryId, m.RouteEntryName = entryID, "renamed"
	if _, err := v.ModifyRouteEntry(m); err != nil {
		t.Fatalf("ModifyRouteEntry on the granted table: %v", err)
	}
	// An entry that does not exist names no table: the action alone is
	// checked and the action answers NotFound.
	m.RouteEntryId = "rte-2vc000000000000000none"
	_, err = v.ModifyRouteEntry(m)
	wantServerError(t, err, alisim.CodeRouteEntryNotFound, http.StatusBadRequest)
}

func TestPolicyAdminAndSTS(t *testing.T) {
	ts := start(t, alisim.Options{})
	e := ecsClient(t, ts, testCred())
	// PUT /admin/accesskeys/{id}/policy takes effect on the next call.
	put := func(method string, body any) {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, ts.AdminURL+"/admin/accesskeys/"+testKeyID+"/policy", rd)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s policy: %s", method, resp.Status)
		}
	}
	put(http.MethodPut, without(t, shippedPolicy(t, "ram-policy.json"), "ecs:DescribeInstances"))
	resp, err := e.DescribeInstances(describeInstancesReq(false))
	if err != nil || resp.TotalCount != 0 {
		t.Fatalf("with the policy: %v, %d instances", err, resp.TotalCount)
	}
	st := ts.Sim.State()
	if st.AccountID != alisim.DefaultAccountID || len(st.AccessKeys) != 1 || st.AccessKeys[0].Policy == nil {
		t.Fatalf("the state does not carry the key's policy: %+v", st.AccessKeys)
	}
	put(http.MethodDelete, nil)
	if resp, err = e.DescribeInstances(describeInstancesReq(false)); err != nil || resp.TotalCount != 3 {
		t.Fatalf("policy removed: %v, %d instances", err, resp.TotalCount)
	}
	// A malformed policy is refused and changes nothing.
	req, _ := http.NewRequest(http.MethodPut, ts.AdminURL+"/admin/accesskeys/"+testKeyID+"/policy", strings.NewReader(`{"Version":"1","Statement":[{"Effect":"Allow","Action":"vpc:*","Resource":"*","Condition":{}}]}`))
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed policy: %v %v", err, r)
	}

	// STS credentials carry the policy of their role.
	if err := ts.Sim.SetRolePolicy(alisim.DefaultRoleARN, without(t, shippedPolicy(t, "ram-policy.json"), "ecs:DescribeInstances")); err != nil {
		t.Fatal(err)
	}
	tc, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	se := ecsClient(t, ts, credentials.NewStsTokenCredential(tc.AccessKeyID, tc.AccessKeySecret, tc.SecurityToken))
	_, err = se.DescribeInstances(describeInstancesReq(true))
	d := serverError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
	if d.AccessDeniedDetail()["AuthPrincipalType"] != "AssumedRoleUser" {
		t.Errorf("AccessDeniedDetail = %v", d.AccessDeniedDetail())
	}
}

func TestScopedPolicyVariant(t *testing.T) {
	p := shippedPolicy(t, "ram-policy-scoped.json")
	raw, _ := json.Marshal(p)
	// The variant names its route table with a placeholder the operator
	// replaces; replace it with the simulator's table.
	raw = bytes.ReplaceAll(raw, []byte("vtb-REPLACE-WITH-ROUTE-TABLE-ID"), []byte(tableID))
	scoped, err := alisim.ParsePolicy(raw)
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, alisim.Options{RAMPolicy: scoped})
	other := "vtb-2vc0000000000000other"
	if _, err := ts.Sim.AddTable(alisim.RouteTable{ID: other, VPCID: vpcID, Type: alisim.TableTypeCustom}); err != nil {
		t.Fatal(err)
	}
	v := vpcClient(t, ts, testCred())
	for table, ok := range map[string]bool{tableID: true, other: false} {
		r := vpc.CreateCreateRouteEntriesRequest()
		r.RouteEntries = &[]vpc.CreateRouteEntriesRouteEntries{{RouteTableId: table, DstCidrBlock: "10.0.6.0/24", NextHop: "i-2vcxxr", NextHopType: "Instance"}}
		_, err := v.CreateRouteEntries(r)
		if ok && err != nil {
			t.Fatalf("write to %s: %v", table, err)
		}
		if !ok {
			wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
		}
	}
	if _, err := v.DescribeRouteEntryList(func() *vpc.DescribeRouteEntryListRequest {
		r := vpc.CreateDescribeRouteEntryListRequest()
		r.RouteTableId = other
		return r
	}()); err != nil {
		t.Fatalf("reads are not scoped: %v", err)
	}
}

// TestENIWriteIsGrantedPerNetworkInterface: the shipped policy grants
// ModifyNetworkInterfaceAttribute on networkinterface ARNs, which the
// simulator names from the call.
func TestENIWriteIsGrantedPerNetworkInterface(t *testing.T) {
	ts := start(t, alisim.Options{RAMPolicy: shippedPolicy(t, "ram-policy.json")})
	enis, err := ts.Sim.NetworkInterfaces("i-2vcxxr")
	if err != nil || len(enis) == 0 {
		t.Fatalf("ENIs of i-2vcxxr: %v %v", enis, err)
	}
	e := ecsClient(t, ts, testCred())
	req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
	req.NetworkInterfaceId = enis[0].ID
	req.SourceDestCheck = requests.NewBoolean(false)
	if _, err := e.ModifyNetworkInterfaceAttribute(req); err != nil {
		t.Fatalf("granted on networkinterface/*: %v", err)
	}
	narrow := mustPolicy(t, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:ModifyNetworkInterfaceAttribute","Resource":"acs:ecs:*:*:networkinterface/eni-other"}]}`)
	if err := ts.Sim.SetAccessKeyPolicy(testKeyID, narrow); err != nil {
		t.Fatal(err)
	}
	req = ecs.CreateModifyNetworkInterfaceAttributeRequest()
	req.NetworkInterfaceId = enis[0].ID
	req.SourceDestCheck = requests.NewBoolean(true)
	_, err = e.ModifyNetworkInterfaceAttribute(req)
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
}
