package alisim_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ecs"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func ecsDescribeReq() *ecs.DescribeInstancesRequest {
	r := ecs.CreateDescribeInstancesRequest()
	r.RegionId = region
	return r
}

func jsonArray(t *testing.T, v []string) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDescribeInstances(t *testing.T) {
	ts := start(t, alisim.Options{})
	big, err := ts.Sim.AddVSwitch(alisim.VSwitch{VPCID: vpcID, CIDR: netip.MustParsePrefix("192.168.16.0/20")})
	if err != nil {
		t.Fatal(err)
	}
	added, err := ts.Sim.AddInstances(250, big.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Sim.SetInstanceStatus("i-2vcxxs", alisim.InstanceStopped); err != nil {
		t.Fatal(err)
	}
	c := ecsClient(t, ts, testCred())

	t.Run("by ID", func(t *testing.T) {
		req := ecsDescribeReq()
		req.InstanceIds = jsonArray(t, []string{"i-2vcxxr", "i-2vcxxs", "i-gone"})
		resp, err := c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]ecs.Instance{}
		for _, in := range resp.Instances.Instance {
			got[in.InstanceId] = in
		}
		if len(got) != 2 || resp.TotalCount != 2 {
			t.Fatalf("got %d instances (TotalCount %d), want 2", len(got), resp.TotalCount)
		}
		r := got["i-2vcxxr"]
		if r.Status != "Running" || r.VpcAttributes.VpcId != vpcID || r.VpcAttributes.VSwitchId != alisim.DefaultVSwitchID ||
			len(r.VpcAttributes.PrivateIpAddress.IpAddress) != 1 || r.VpcAttributes.PrivateIpAddress.IpAddress[0] != "192.168.0.10" ||
			r.RegionId != region || r.ZoneId != alisim.DefaultZone {
			t.Fatalf("i-2vcxxr = %+v", r)
		}
		if got["i-2vcxxs"].Status != "Stopped" {
			t.Fatalf("i-2vcxxs status = %s, want Stopped", got["i-2vcxxs"].Status)
		}
	})
	t.Run("by private IP", func(t *testing.T) {
		req := ecsDescribeReq()
		req.PrivateIpAddresses = jsonArray(t, []string{added[7].PrivateIP.String()})
		req.InstanceNetworkType = "vpc"
		req.VpcId = vpcID
		req.PageSize = requests.NewInteger(100)
		resp, err := c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Instances.Instance) != 1 || resp.Instances.Instance[0].InstanceId != added[7].ID {
			t.Fatalf("by private IP = %+v, want %s", resp.Instances.Instance, added[7].ID)
		}
		// Without InstanceNetworkType=vpc the documented combination is
		// incomplete and ECS drops the filter.
		req = ecsDescribeReq()
		req.PrivateIpAddresses = jsonArray(t, []string{added[7].PrivateIP.String()})
		req.VpcId = vpcID
		req.PageSize = requests.NewInteger(100)
		resp, err = c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Instances.Instance) < 2 {
			t.Fatalf("PrivateIpAddresses without InstanceNetworkType=vpc filtered to %d instances, want the filter ignored", len(resp.Instances.Instance))
		}
	})
	t.Run("status filter", func(t *testing.T) {
		req := ecsDescribeReq()
		req.Status = "Stopped"
		resp, err := c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TotalCount != 1 || resp.Instances.Instance[0].InstanceId != "i-2vcxxs" {
			t.Fatalf("Stopped instances = %+v", resp.Instances.Instance)
		}
	})
	t.Run("pages of 100", func(t *testing.T) {
		seen := map[string]int{}
		for page := 1; ; page++ {
			req := ecsDescribeReq()
			req.PageSize = requests.NewInteger(100)
			req.PageNumber = requests.NewInteger(page)
			resp, err := c.DescribeInstances(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.TotalCount != 253 || resp.PageNumber != page || resp.PageSize != 100 {
				t.Fatalf("page %d: TotalCount %d PageNumber %d PageSize %d", page, resp.TotalCount, resp.PageNumber, resp.PageSize)
			}
			if len(resp.Instances.Instance) == 0 {
				break
			}
			for _, in := range resp.Instances.Instance {
				seen[in.InstanceId]++
			}
		}
		if len(seen) != 253 {
			t.Fatalf("paging saw %d distinct instances, want 253", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("instance %s listed %d times", id, n)
			}
		}
	})
	t.Run("released instance is gone", func(t *testing.T) {
		if err := ts.Sim.ReleaseInstance("i-2vcxxt"); err != nil {
			t.Fatal(err)
		}
		req := ecsDescribeReq()
		req.InstanceIds = jsonArray(t, []string{"i-2vcxxt"})
		resp, err := c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.TotalCount != 0 {
			t.Fatalf("released instance still listed: %+v", resp.Instances.Instance)
		}
	})
	t.Run("invalid parameters", func(t *testing.T) {
		req := ecsDescribeReq()
		req.InstanceIds = "i-2vcxxr"
		_, err := c.DescribeInstances(req)
		wantServerError(t, err, alisim.CodeInvalidInstanceIDs, http.StatusBadRequest)
		req = ecsDescribeReq()
		req.PageSize = requests.NewInteger(101)
		_, err = c.DescribeInstances(req)
		wantServerError(t, err, alisim.CodeInvalidParameter, http.StatusBadRequest)
		req = ecsDescribeReq()
		req.Status = "Exploded"
		_, err = c.DescribeInstances(req)
		wantServerError(t, err, alisim.CodeInvalidStatus, http.StatusBadRequest)
	})
}

func TestAddInstancesExhaustsVSwitch(t *testing.T) {
	ts := start(t, alisim.Options{})
	// 192.168.0.0/24 holds 256 - 4 reserved at the start - 1 at the end - 3 in use.
	if _, err := ts.Sim.AddInstances(249, ""); err == nil {
		t.Fatal("allocating past the vSwitch succeeded")
	}
	if got := len(ts.Sim.State().Instances); got != 3 {
		t.Fatalf("a failed allocation left %d instances, want the 3 of the default state", got)
	}
	if _, err := ts.Sim.AddInstances(248, ""); err != nil {
		t.Fatalf("allocating exactly the free addresses: %v", err)
	}
}

func TestDescribeInstancesNextToken(t *testing.T) {
	ts := start(t, alisim.Options{})
	if _, err := ts.Sim.AddInstances(120, ""); err != nil {
		t.Fatal(err)
	}
	c := ecsClient(t, ts, testCred())
	seen := map[string]int{}
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("NextToken paging does not end")
		}
		req := ecsDescribeReq()
		req.MaxResults = requests.NewInteger(50)
		req.NextToken = token
		resp, err := c.DescribeInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Instances.Instance) > 50 {
			t.Fatalf("page of %d instances, MaxResults 50", len(resp.Instances.Instance))
		}
		for _, in := range resp.Instances.Instance {
			seen[in.InstanceId]++
		}
		if resp.NextToken == "" {
			break
		}
		token = resp.NextToken
	}
	if len(seen) != 123 {
		t.Fatalf("NextToken paging saw %d instances, want 123", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("instance %s listed %d times", id, n)
		}
	}
	req := ecsDescribeReq()
	req.NextToken = "garbage"
	_, err := c.DescribeInstances(req)
	wantServerError(t, err, alisim.CodeInvalidNextToken, http.StatusBadRequest)
}
