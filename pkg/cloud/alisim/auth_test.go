package alisim_test

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

func describeReq() *vpc.DescribeRouteEntryListRequest {
	r := vpc.CreateDescribeRouteEntryListRequest()
	r.RouteTableId = tableID
	return r
}

// recorder is a RoundTripper that keeps a copy of the last request the SDK
// sent, so a test can replay it byte for byte.
type recorder struct {
	mu     sync.Mutex
	method string
	url    string
	header http.Header
	body   []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.method, r.url, r.header, r.body = req.Method, req.URL.String(), req.Header.Clone(), body
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (r *recorder) replay(t *testing.T) *http.Response {
	t.Helper()
	r.mu.Lock()
	req, err := http.NewRequest(r.method, r.url, bytes.NewReader(r.body))
	req.Header = r.header.Clone()
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("replaying: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestReplayedNonceRejected(t *testing.T) {
	ts := start(t, alisim.Options{})
	rec := &recorder{}
	cfg := sdkConfig()
	cfg.Transport = rec
	c, err := vpc.NewClientWithOptions(region, cfg, testCred())
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = ts.APIEndpoint
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("first call: %v", err)
	}
	resp := rec.replay(t)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replay status = %d, want 400", resp.StatusCode)
	}
	if n := ts.Sim.Counters()["DescribeRouteEntryList"]; n["Success"] != 1 || n[alisim.CodeSignatureNonceUsed] != 1 {
		t.Fatalf("counters = %v, want one success and one SignatureNonceUsed", n)
	}
}

func TestTimestampWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew time.Duration
		ok   bool
	}{
		{"within the window", 14 * time.Minute, true},
		{"too old", 16 * time.Minute, false},
		{"too far in the future", -16 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The simulator's clock runs ahead of (or behind) the SDK's.
			clock := alisim.NewFakeClock(time.Now().Add(tc.skew))
			ts := start(t, alisim.Options{Clock: clock})
			_, err := vpcClient(t, ts, testCred()).DescribeRouteEntryList(describeReq())
			if tc.ok {
				if err != nil {
					t.Fatalf("call within the window failed: %v", err)
				}
				return
			}
			wantServerError(t, err, alisim.CodeInvalidTimeStampExpired, http.StatusBadRequest)
		})
	}
}

func TestSecurityTokenChecks(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, TimestampWindow: 24 * time.Hour})
	creds, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good := vpcClient(t, ts, credentials.NewStsTokenCredential(creds.AccessKeyID, creds.AccessKeySecret, creds.SecurityToken))
	if _, err := good.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("call with a fresh STS token: %v", err)
	}
	t.Run("missing token", func(t *testing.T) {
		c := vpcClient(t, ts, credentials.NewAccessKeyCredential(creds.AccessKeyID, creds.AccessKeySecret))
		_, err := c.DescribeRouteEntryList(describeReq())
		wantServerError(t, err, alisim.CodeMissingSecurityToken, http.StatusBadRequest)
	})
	t.Run("token of another key", func(t *testing.T) {
		other, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c := vpcClient(t, ts, credentials.NewStsTokenCredential(creds.AccessKeyID, creds.AccessKeySecret, other.SecurityToken))
		_, err = c.DescribeRouteEntryList(describeReq())
		wantServerError(t, err, alisim.CodeSecurityTokenMismatch, http.StatusBadRequest)
	})
	t.Run("token on a permanent key", func(t *testing.T) {
		c := vpcClient(t, ts, credentials.NewStsTokenCredential(testKeyID, testKeySecret, creds.SecurityToken))
		_, err := c.DescribeRouteEntryList(describeReq())
		wantServerError(t, err, alisim.CodeSecurityTokenMismatch, http.StatusBadRequest)
	})
	t.Run("expired", func(t *testing.T) {
		clock.Advance(15*time.Minute + time.Second)
		_, err := good.DescribeRouteEntryList(describeReq())
		wantServerError(t, err, alisim.CodeSecurityTokenExpired, http.StatusBadRequest)
	})
}

func TestForbiddenRAM(t *testing.T) {
	ts := start(t, alisim.Options{})
	ts.Sim.AddAccessKey("LTAIreadonly", "ro-secret", "vpc:DescribeRouteEntryList", "DescribeRouteTableList")
	c := vpcClient(t, ts, credentials.NewAccessKeyCredential("LTAIreadonly", "ro-secret"))
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("permitted action: %v", err)
	}
	if _, err := c.DescribeRouteTableList(vpc.CreateDescribeRouteTableListRequest()); err != nil {
		t.Fatalf("permitted action without product prefix: %v", err)
	}
	_, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
	_, err = ecsClient(t, ts, credentials.NewAccessKeyCredential("LTAIreadonly", "ro-secret")).DescribeInstances(ecsDescribeReq())
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
	if routes, _ := ts.Sim.Routes(tableID); len(routes) != 3 {
		t.Fatalf("a forbidden call changed the table: %d entries", len(routes))
	}
}

func TestDisabledAccessKey(t *testing.T) {
	ts := start(t, alisim.Options{})
	if err := ts.Sim.SetAccessKeyDisabled(testKeyID, true); err != nil {
		t.Fatal(err)
	}
	_, err := vpcClient(t, ts, testCred()).DescribeRouteEntryList(describeReq())
	wantServerError(t, err, alisim.CodeInvalidAccessKeyInactive, http.StatusBadRequest)
}

func TestDispatchByVersionAndAction(t *testing.T) {
	ts := start(t, alisim.Options{})
	c := vpcClient(t, ts, testCred())
	call := func(version, action string) error {
		req := requests.NewCommonRequest()
		req.Method = requests.POST
		req.Product = "Vpc"
		req.Version = version
		req.ApiName = action
		req.QueryParams["RouteTableId"] = tableID
		_, err := c.ProcessCommonRequest(req)
		return err
	}
	wantServerError(t, call(alisim.VersionVPC, "DescribeNatGateways"), alisim.CodeInvalidAction, http.StatusNotFound)
	wantServerError(t, call("2099-01-01", "DescribeRouteEntryList"), alisim.CodeInvalidVersion, http.StatusBadRequest)
	wantServerError(t, call(alisim.VersionECS, "DescribeRouteEntryList"), alisim.CodeInvalidAction, http.StatusNotFound)
	if err := call(alisim.VersionVPC, "DescribeRouteEntryList"); err != nil {
		t.Fatalf("common request: %v", err)
	}
}

func TestGETAndFormBodyRequests(t *testing.T) {
	ts := start(t, alisim.Options{})
	c := vpcClient(t, ts, testCred())
	get := describeReq()
	get.Method = requests.GET
	resp, err := c.DescribeRouteEntryList(get)
	if err != nil {
		t.Fatalf("GET request: %v", err)
	}
	if len(resp.RouteEntrys.RouteEntry) != 3 {
		t.Fatalf("GET request listed %d entries, want 3", len(resp.RouteEntrys.RouteEntry))
	}
	// Parameters in a form body are signed and read like query ones.
	form := requests.NewCommonRequest()
	form.Method = requests.POST
	form.Product, form.Version, form.ApiName = "Vpc", alisim.VersionVPC, "CreateRouteEntry"
	form.FormParams["RouteTableId"] = tableID
	form.FormParams["DestinationCidrBlock"] = "10.244.7.0/24"
	form.FormParams["NextHopId"] = "i-2vcxxs"
	form.FormParams["RouteEntryName"] = "name with spaces * and ~tilde/节点=α&β"
	if _, err := c.ProcessCommonRequest(form); err != nil {
		t.Fatalf("form-body request: %v", err)
	}
	routes, _ := ts.Sim.Routes(tableID)
	last := routes[len(routes)-1]
	if last.Destination.String() != "10.244.7.0/24" || last.NextHopID != "i-2vcxxs" || last.Name != "name with spaces * and ~tilde/节点=α&β" {
		t.Fatalf("entry created from the form body = %+v", last)
	}
}
