package alisim_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func describeENIs(t *testing.T, c *ecs.Client, edit func(*ecs.DescribeNetworkInterfacesRequest)) *ecs.DescribeNetworkInterfacesResponse {
	t.Helper()
	req := ecs.CreateDescribeNetworkInterfacesRequest()
	req.RegionId = region
	edit(req)
	resp, err := c.DescribeNetworkInterfaces(req)
	if err != nil {
		t.Fatalf("DescribeNetworkInterfaces: %v", err)
	}
	return resp
}

func modifyCheck(c *ecs.Client, eni string, on string) error {
	req := ecs.CreateModifyNetworkInterfaceAttributeRequest()
	req.RegionId = region
	req.NetworkInterfaceId = eni
	req.SourceDestCheck = requests.Boolean(on)
	_, err := c.ModifyNetworkInterfaceAttribute(req)
	return err
}

func TestDefaultInstancesHavePrimaryENIWithCheckOff(t *testing.T) {
	ts := start(t, alisim.Options{})
	c := ecsClient(t, ts, testCred())
	for i, id := range []string{"i-2vcxxr", "i-2vcxxs", "i-2vcxxt"} {
		resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.InstanceId = id })
		if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 1 {
			t.Fatalf("%s: %d ENIs, want its primary one", id, len(resp.NetworkInterfaceSets.NetworkInterfaceSet))
		}
		e := resp.NetworkInterfaceSets.NetworkInterfaceSet[0]
		wantIP := fmt.Sprintf("192.168.0.%d", 10+i)
		if e.Type != alisim.ENITypePrimary || e.InstanceId != id || e.PrivateIpAddress != wantIP || e.SourceDestCheck ||
			e.Status != alisim.ENIStatusInUse || e.VpcId != vpcID || e.Attachment.InstanceId != id ||
			len(e.PrivateIpSets.PrivateIpSet) != 1 || !e.PrivateIpSets.PrivateIpSet[0].Primary {
			t.Fatalf("%s: primary ENI = %+v", id, e)
		}
	}
	// DescribeInstances names the primary ENI, as the CCM reads it.
	req := ecsDescribeReq()
	req.InstanceIds = `["i-2vcxxr"]`
	resp, err := c.DescribeInstances(req)
	if err != nil {
		t.Fatal(err)
	}
	nis := resp.Instances.Instance[0].NetworkInterfaces.NetworkInterface
	enis, err := ts.Sim.NetworkInterfaces("i-2vcxxr")
	if err != nil {
		t.Fatal(err)
	}
	if len(nis) != 1 || nis[0].Type != "Primary" || nis[0].NetworkInterfaceId != enis[0].ID || nis[0].PrimaryIpAddress != "192.168.0.10" {
		t.Fatalf("DescribeInstances network interfaces = %+v, want the primary ENI %s", nis, enis[0].ID)
	}
}

func TestNewInstancesGetCheckOnAfterTheConfiguredDate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		since time.Time
		want  bool
	}{
		{"default date (2025-04-22) is past", time.Time{}, true},
		{"date in the future", time.Now().Add(24 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := start(t, alisim.Options{SourceDestCheckSince: tc.since})
			added, err := ts.Sim.AddInstances(2, "")
			if err != nil {
				t.Fatal(err)
			}
			c := ecsClient(t, ts, testCred())
			for _, in := range added {
				resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.InstanceId = in.ID })
				if n := len(resp.NetworkInterfaceSets.NetworkInterfaceSet); n != 1 {
					t.Fatalf("%s has %d ENIs", in.ID, n)
				}
				if got := resp.NetworkInterfaceSets.NetworkInterfaceSet[0].SourceDestCheck; got != tc.want {
					t.Fatalf("%s: SourceDestCheck = %v, want %v", in.ID, got, tc.want)
				}
			}
		})
	}
}

func TestSecondaryENIAndFilters(t *testing.T) {
	ts := start(t, alisim.Options{})
	sec, err := ts.Sim.AttachSecondaryENI("i-2vcxxr")
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != alisim.ENITypeSecondary || !sec.SourceDestCheck || sec.PrivateIPs[0].String() == "192.168.0.10" {
		t.Fatalf("secondary ENI = %+v", sec)
	}
	c := ecsClient(t, ts, testCred())
	all := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.InstanceId = "i-2vcxxr" })
	if all.TotalCount != 2 {
		t.Fatalf("i-2vcxxr has %d ENIs, want 2", all.TotalCount)
	}
	prim := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.InstanceId = "i-2vcxxr"; r.Type = "Primary" })
	if prim.TotalCount != 1 || prim.NetworkInterfaceSets.NetworkInterfaceSet[0].Type != "Primary" {
		t.Fatalf("Type=Primary = %+v", prim.NetworkInterfaceSets.NetworkInterfaceSet)
	}
	byIP := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) {
		r.PrivateIpAddress = &[]string{sec.PrivateIPs[0].String()}
	})
	if byIP.TotalCount != 1 || byIP.NetworkInterfaceSets.NetworkInterfaceSet[0].NetworkInterfaceId != sec.ID {
		t.Fatalf("by private IP = %+v", byIP.NetworkInterfaceSets.NetworkInterfaceSet)
	}
	// Released with the instance.
	if err := ts.Sim.ReleaseInstance("i-2vcxxr"); err != nil {
		t.Fatal(err)
	}
	gone := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{sec.ID} })
	if gone.TotalCount != 0 {
		t.Fatalf("ENIs of a released instance still listed: %+v", gone.NetworkInterfaceSets.NetworkInterfaceSet)
	}
}

func TestDescribeNetworkInterfacesPaging(t *testing.T) {
	ts := start(t, alisim.Options{})
	if _, err := ts.Sim.AddInstances(120, ""); err != nil {
		t.Fatal(err)
	}
	c := ecsClient(t, ts, testCred())
	t.Run("NextToken", func(t *testing.T) {
		seen := map[string]int{}
		token := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("NextToken paging does not end")
			}
			resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) {
				r.MaxResults = requests.NewInteger(50)
				r.NextToken = token
			})
			if n := len(resp.NetworkInterfaceSets.NetworkInterfaceSet); n > 50 {
				t.Fatalf("page of %d, MaxResults 50", n)
			}
			for _, e := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
				seen[e.NetworkInterfaceId]++
			}
			if resp.NextToken == "" {
				break
			}
			token = resp.NextToken
		}
		if len(seen) != 123 {
			t.Fatalf("saw %d ENIs, want 123", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("ENI %s listed %d times", id, n)
			}
		}
	})
	t.Run("MaxResults below 10 is raised to 10", func(t *testing.T) {
		resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.MaxResults = requests.NewInteger(3) })
		if n := len(resp.NetworkInterfaceSets.NetworkInterfaceSet); n != 10 || resp.NextToken == "" {
			t.Fatalf("MaxResults 3 gave %d ENIs (NextToken %q), want 10 and a token", n, resp.NextToken)
		}
	})
	t.Run("PageNumber", func(t *testing.T) {
		seen := map[string]bool{}
		for page := 1; page <= 3; page++ {
			resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) {
				r.PageSize = requests.NewInteger(100)
				r.PageNumber = requests.NewInteger(page)
			})
			if resp.TotalCount != 123 || resp.PageNumber != page {
				t.Fatalf("page %d: TotalCount %d PageNumber %d", page, resp.TotalCount, resp.PageNumber)
			}
			for _, e := range resp.NetworkInterfaceSets.NetworkInterfaceSet {
				seen[e.NetworkInterfaceId] = true
			}
		}
		if len(seen) != 123 {
			t.Fatalf("pages saw %d ENIs, want 123", len(seen))
		}
	})
	t.Run("by up to 100 IDs", func(t *testing.T) {
		enis, err := ts.Sim.NetworkInterfaces("")
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, 0, 101)
		for _, e := range enis[:101] {
			ids = append(ids, e.ID)
		}
		req := ecs.CreateDescribeNetworkInterfacesRequest()
		req.RegionId = region
		over := ids[:101]
		req.NetworkInterfaceId = &over
		_, err = c.DescribeNetworkInterfaces(req)
		wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
		resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) {
			hundred := ids[:100]
			r.NetworkInterfaceId = &hundred
			r.MaxResults = requests.NewInteger(100)
		})
		if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 100 || resp.NextToken != "" {
			t.Fatalf("100 IDs with MaxResults 100 gave %d (NextToken %q)", len(resp.NetworkInterfaceSets.NetworkInterfaceSet), resp.NextToken)
		}
	})
	t.Run("invalid parameters", func(t *testing.T) {
		req := ecs.CreateDescribeNetworkInterfacesRequest()
		req.NextToken = "garbage"
		_, err := c.DescribeNetworkInterfaces(req)
		wantServerError(t, err, alisim.CodeInvalidNextToken, http.StatusBadRequest)
		req = ecs.CreateDescribeNetworkInterfacesRequest()
		req.PageSize = requests.NewInteger(101)
		_, err = c.DescribeNetworkInterfaces(req)
		wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
		req = ecs.CreateDescribeNetworkInterfacesRequest()
		req.Type = "Trunk"
		_, err = c.DescribeNetworkInterfaces(req)
		wantServerError(t, err, alisim.CodeENIInvalidType, http.StatusBadRequest)
	})
}

func TestModifyNetworkInterfaceAttributeSourceDestCheck(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, ENIModifyDelay: time.Second})
	added, err := ts.Sim.AddInstances(1, "")
	if err != nil {
		t.Fatal(err)
	}
	enis, err := ts.Sim.NetworkInterfaces(added[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	eni := enis[0].ID
	if !enis[0].SourceDestCheck {
		t.Fatal("a new instance's primary ENI has the check off")
	}
	c := ecsClient(t, ts, testCred())
	check := func() bool {
		t.Helper()
		resp := describeENIs(t, c, func(r *ecs.DescribeNetworkInterfacesRequest) { r.NetworkInterfaceId = &[]string{eni} })
		if len(resp.NetworkInterfaceSets.NetworkInterfaceSet) != 1 {
			t.Fatalf("ENI %s not listed", eni)
		}
		return resp.NetworkInterfaceSets.NetworkInterfaceSet[0].SourceDestCheck
	}
	if err := modifyCheck(c, eni, "false"); err != nil {
		t.Fatal(err)
	}
	if !check() {
		t.Fatal("the change is visible before the modify delay")
	}
	wantServerError(t, modifyCheck(c, eni, "false"), alisim.CodeENIConflict, http.StatusBadRequest)
	clock.Advance(time.Second)
	if check() {
		t.Fatal("the check is still on after the modify delay")
	}
	// Setting the value it has is a no-op that succeeds.
	if err := modifyCheck(c, eni, "false"); err != nil {
		t.Fatal(err)
	}
	// Out of band, back on: visible at once.
	if _, err := ts.Sim.SetInstanceSourceDestCheck(added[0].ID, true); err != nil {
		t.Fatal(err)
	}
	if !check() {
		t.Fatal("out-of-band change not visible")
	}

	wantServerError(t, modifyCheck(c, "eni-2vcnothere", "false"), alisim.CodeENINotFound, http.StatusNotFound)
	wantServerError(t, modifyCheck(c, "", "false"), alisim.CodeMissingParameter, http.StatusBadRequest)
	wantServerError(t, modifyCheck(c, eni, "maybe"), alisim.CodeInvalidParameter, http.StatusBadRequest)

	ts.Sim.SetThrottle("ModifyNetworkInterfaceAttribute", 0.001, 1)
	clock.Advance(time.Minute)
	if err := modifyCheck(c, eni, "false"); err != nil {
		t.Fatal(err)
	}
	wantServerError(t, modifyCheck(c, eni, "false"), alisim.CodeThrottlingUser, http.StatusBadRequest)
}

func TestENIStateRoundTripAndAdmin(t *testing.T) {
	ts := start(t, alisim.Options{})
	var out map[string]any
	admin(t, ts, http.MethodPatch, "/admin/instances/i-2vcxxs/primary-eni", map[string]bool{"sourceDestCheck": true}, http.StatusOK, &out)
	var enis []alisim.NetworkInterface
	admin(t, ts, http.MethodGet, "/admin/enis?instance=i-2vcxxs", nil, http.StatusOK, &enis)
	if len(enis) != 1 || !enis[0].SourceDestCheck || out["id"] != enis[0].ID {
		t.Fatalf("after PATCH primary-eni: %+v (answer %v)", enis, out)
	}
	var sec alisim.NetworkInterface
	admin(t, ts, http.MethodPost, "/admin/enis", map[string]string{"instanceId": "i-2vcxxs"}, http.StatusOK, &sec)
	admin(t, ts, http.MethodPatch, "/admin/enis/"+sec.ID, map[string]bool{"sourceDestCheck": false}, http.StatusOK, nil)
	admin(t, ts, http.MethodPatch, "/admin/enis/eni-missing", map[string]bool{"sourceDestCheck": false}, http.StatusNotFound, nil)
	admin(t, ts, http.MethodPatch, "/admin/instances/i-missing/primary-eni", map[string]bool{"sourceDestCheck": false}, http.StatusNotFound, nil)

	st := ts.Sim.State()
	if err := ts.Sim.LoadState(st); err != nil {
		t.Fatal(err)
	}
	again, err := ts.Sim.NetworkInterfaces("i-2vcxxs")
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 2 || again[0].ID != enis[0].ID && again[1].ID != enis[0].ID {
		t.Fatalf("ENIs after a state round trip: %+v", again)
	}
	for _, e := range again {
		if e.ID == enis[0].ID && !e.SourceDestCheck || e.ID == sec.ID && e.SourceDestCheck {
			t.Fatalf("checks not kept across a state round trip: %+v", again)
		}
	}
	bad := ts.Sim.State()
	bad.NetworkInterfaces = append(bad.NetworkInterfaces, alisim.NetworkInterface{Type: alisim.ENITypePrimary, InstanceID: "i-2vcxxs"})
	if err := ts.Sim.LoadState(bad); err == nil {
		t.Fatal("a second primary ENI for one instance was accepted")
	}
}
