package alisim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// metadataGet performs an IMDSv2 read.
func metadataGet(t *testing.T, base, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(alisim.MetadataTokenHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metadataToken(t *testing.T, base, ttl string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/latest/api/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if ttl != "" {
		req.Header.Set(alisim.MetadataTokenTTLHeader, ttl)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMetadataIMDSv2(t *testing.T) {
	clock := alisim.NewFakeClock(time.Now())
	ts := start(t, alisim.Options{Clock: clock, MetadataInstanceID: "i-2vcxxs"})
	base := ts.MetadataURL
	for _, tc := range []struct {
		name, ttl string
		header    http.Header
		status    int
	}{
		{"no TTL", "", nil, http.StatusBadRequest},
		{"TTL too long", "21601", nil, http.StatusBadRequest},
		{"TTL not a number", "soon", nil, http.StatusBadRequest},
		{"proxied", "60", http.Header{"X-Forwarded-For": {"10.0.0.1"}}, http.StatusForbidden},
	} {
		if status, _ := metadataToken(t, base, tc.ttl, tc.header); status != tc.status {
			t.Errorf("token request %s: status %d, want %d", tc.name, status, tc.status)
		}
	}
	status, token := metadataToken(t, base, "60", nil)
	if status != http.StatusOK || token == "" {
		t.Fatalf("token request: %d %q", status, token)
	}
	if status, _ := metadataGet(t, base, "/latest/meta-data/instance-id", ""); status != http.StatusUnauthorized {
		t.Fatalf("read without a token: status %d, want 401", status)
	}
	if status, _ := metadataGet(t, base, "/latest/meta-data/instance-id", "forged"); status != http.StatusUnauthorized {
		t.Fatalf("read with a forged token: status %d, want 401", status)
	}
	for path, want := range map[string]string{
		"region-id": region, "zone-id": alisim.DefaultZone, "instance-id": "i-2vcxxs", "vpc-id": vpcID,
		"vswitch-id": alisim.DefaultVSwitchID, "private-ipv4": "192.168.0.11", "vpc-cidr-block": "192.168.0.0/16",
		"ram/security-credentials/": alisim.DefaultRoleName,
	} {
		if status, got := metadataGet(t, base, "/latest/meta-data/"+path, token); status != http.StatusOK || got != want {
			t.Errorf("%s = %d %q, want %q", path, status, got, want)
		}
	}
	status, body := metadataGet(t, base, "/latest/meta-data/ram/security-credentials/"+alisim.DefaultRoleName, token)
	var cred struct {
		AccessKeyID     string `json:"AccessKeyId"`
		AccessKeySecret string `json:"AccessKeySecret"`
		SecurityToken   string `json:"SecurityToken"`
		Expiration      string `json:"Expiration"`
		LastUpdated     string `json:"LastUpdated"`
		Code            string `json:"Code"`
	}
	if err := json.Unmarshal([]byte(body), &cred); err != nil || status != http.StatusOK || cred.Code != "Success" || cred.SecurityToken == "" {
		t.Fatalf("role credentials: %d %q (%v)", status, body, err)
	}
	if status, _ := metadataGet(t, base, "/latest/meta-data/ram/security-credentials/other-role", token); status != http.StatusNotFound {
		t.Fatalf("credentials of a role not attached: status %d, want 404", status)
	}
	if status, _ := metadataGet(t, base, "/latest/meta-data/no-such-key", token); status != http.StatusNotFound {
		t.Fatalf("unknown key: status %d, want 404", status)
	}
	clock.Advance(61 * time.Second)
	if status, _ := metadataGet(t, base, "/latest/meta-data/instance-id", token); status != http.StatusUnauthorized {
		t.Fatalf("read with an expired token: status %d, want 401", status)
	}
}

func TestMetadataIMDSv1Allowed(t *testing.T) {
	ts := start(t, alisim.Options{AllowIMDSv1: true})
	if status, got := metadataGet(t, ts.MetadataURL, "/latest/meta-data/instance-id", ""); status != http.StatusOK || got != "i-2vcxxr" {
		t.Fatalf("IMDSv1 read = %d %q", status, got)
	}
}

// routeMetadataToLoopback makes the default transport send requests for the
// metadata address, which the SDK hard-codes, to the simulator as a proxy,
// and refuses every other non-loopback destination so nothing leaves the
// machine. It restores the transport when the test ends.
func routeMetadataToLoopback(t *testing.T, metadataURL string) {
	t.Helper()
	proxy, err := url.Parse(metadataURL)
	if err != nil {
		t.Fatal(err)
	}
	orig := http.DefaultTransport
	tr := orig.(*http.Transport).Clone()
	tr.Proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Host == "100.100.100.200" {
			return proxy, nil
		}
		if ip := net.ParseIP(r.URL.Hostname()); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("test transport refuses non-loopback destination %s", r.URL.Host)
		}
		return nil, nil //nolint:nilnil // http.Transport.Proxy: a nil URL and no error mean "no proxy".
	}
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); !net.ParseIP(host).IsLoopback() {
			return nil, fmt.Errorf("test transport refuses to dial %s", addr)
		}
		return dial(ctx, network, addr)
	}
	http.DefaultTransport = tr
	t.Cleanup(func() { http.DefaultTransport = orig })
}

// TestSDKECSRAMRoleProvider runs the SDK's own ECS RAM role credentials
// provider (IMDSv2, role discovery, credentials) against the simulator and
// uses what it returns for a VPC call.
func TestSDKECSRAMRoleProvider(t *testing.T) {
	ts := start(t, alisim.Options{})
	routeMetadataToLoopback(t, ts.MetadataURL)
	provider, err := credentials.NewECSRAMRoleCredentialsProviderBuilder().WithDisableIMDSv1(true).Build()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := provider.GetCredentials()
	if err != nil {
		t.Fatalf("SDK ECS RAM role provider: %v", err)
	}
	if !strings.HasPrefix(cc.AccessKeyId, "STS.") || cc.SecurityToken == "" {
		t.Fatalf("credentials = id %q, token set %v", cc.AccessKeyId, cc.SecurityToken != "")
	}
	c := vpcClient(t, ts, credentials.NewStsTokenCredential(cc.AccessKeyId, cc.AccessKeySecret, cc.SecurityToken))
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("DescribeRouteEntryList with role credentials: %v", err)
	}
	// The metadata service rotates nothing while the credentials are fresh.
	again, err := provider.GetCredentials()
	if err != nil || again.AccessKeyId != cc.AccessKeyId {
		t.Fatalf("second GetCredentials = %v, %v; want the cached key", again, err)
	}
}
