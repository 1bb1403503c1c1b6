package alisim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/sts"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// jwt builds an unsigned-looking JWT with the given claims; the simulator
// checks claims, not signatures.
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "RS256", "kid": "test"}) + "." + enc(claims) + ".c2lnbmF0dXJl"
}

func serviceAccountToken(t *testing.T, mutate func(map[string]any)) string {
	t.Helper()
	claims := map[string]any{
		"iss": alisim.DefaultOIDCIssuer,
		"sub": "system:serviceaccount:kube-system:vpc-route-publisher",
		"aud": []string{"sts.aliyuncs.com"},
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	if mutate != nil {
		mutate(claims)
	}
	return jwt(t, claims)
}

func assumeReq(token string) *sts.AssumeRoleWithOIDCRequest {
	req := sts.CreateAssumeRoleWithOIDCRequest()
	req.RoleArn = alisim.DefaultRoleARN
	req.OIDCProviderArn = alisim.DefaultOIDCProviderARN
	req.OIDCToken = token
	req.RoleSessionName = "vpc-route-publisher"
	return req
}

// anonymous is what an STS client signs AssumeRoleWithOIDC with: the action
// needs no access key, so the simulator ignores the signature on it.
func anonymous() *credentials.AccessKeyCredential {
	return credentials.NewAccessKeyCredential("anonymous", "anonymous")
}

func TestOIDCFlowEndToEnd(t *testing.T) {
	ts := start(t, alisim.Options{WriteBase: -1, WritePerEntry: -1})
	resp, err := stsClient(t, ts, anonymous()).AssumeRoleWithOIDC(assumeReq(serviceAccountToken(t, nil)))
	if err != nil {
		t.Fatalf("AssumeRoleWithOIDC: %v", err)
	}
	cr := resp.Credentials
	if !strings.HasPrefix(cr.AccessKeyId, "STS.") || cr.AccessKeySecret == "" || cr.SecurityToken == "" {
		t.Fatalf("credentials = %+v", cr)
	}
	exp, err := time.Parse("2006-01-02T15:04:05Z", cr.Expiration)
	if err != nil || time.Until(exp) < 59*time.Minute || time.Until(exp) > time.Hour+time.Minute {
		t.Fatalf("Expiration %q, want about an hour from now (%v)", cr.Expiration, err)
	}
	if resp.OIDCTokenInfo.Issuer != alisim.DefaultOIDCIssuer || resp.OIDCTokenInfo.Subject != "system:serviceaccount:kube-system:vpc-route-publisher" ||
		resp.AssumedRoleUser.Arn != "acs:ram::1000000000000001:assumed-role/vpc-route-publisher/vpc-route-publisher" {
		t.Fatalf("token info %+v, assumed role %+v", resp.OIDCTokenInfo, resp.AssumedRoleUser)
	}
	tmp := credentials.NewStsTokenCredential(cr.AccessKeyId, cr.AccessKeySecret, cr.SecurityToken)
	c := vpcClient(t, ts, tmp)
	list, err := c.DescribeRouteEntryList(describeReq())
	if err != nil {
		t.Fatalf("DescribeRouteEntryList with the temporary key: %v", err)
	}
	if len(list.RouteEntrys.RouteEntry) != 3 {
		t.Fatalf("listed %d entries, want 3", len(list.RouteEntrys.RouteEntry))
	}
	if _, err := createEntry(t, c, "10.244.1.0/24", "i-2vcxxr"); err != nil {
		t.Fatalf("CreateRouteEntry with the temporary key: %v", err)
	}
	if _, err := ecsClient(t, ts, tmp).DescribeInstances(ecsDescribeReq()); err != nil {
		t.Fatalf("DescribeInstances with the temporary key: %v", err)
	}
	// Using the temporary key without its token fails.
	_, err = vpcClient(t, ts, credentials.NewAccessKeyCredential(cr.AccessKeyId, cr.AccessKeySecret)).DescribeRouteEntryList(describeReq())
	wantServerError(t, err, alisim.CodeMissingSecurityToken, http.StatusBadRequest)
}

func TestOIDCUnsignedRequest(t *testing.T) {
	// The SDK's own OIDC credential provider sends AssumeRoleWithOIDC without
	// any AccessKeyId or Signature.
	ts := start(t, alisim.Options{})
	form := url.Values{
		"Action": {"AssumeRoleWithOIDC"}, "Version": {alisim.VersionSTS}, "Format": {"JSON"},
		"RoleArn": {alisim.DefaultRoleARN}, "OIDCProviderArn": {alisim.DefaultOIDCProviderARN},
		"OIDCToken": {serviceAccountToken(t, nil)}, "RoleSessionName": {"s"}, "DurationSeconds": {"900"},
	}
	resp, err := http.PostForm("http://"+ts.APIEndpoint+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Credentials struct {
			AccessKeyID string `json:"AccessKeyId"`
			Expiration  string `json:"Expiration"`
		} `json:"Credentials"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Credentials.AccessKeyID == "" {
		t.Fatalf("status %d, body %+v, err %v", resp.StatusCode, body, err)
	}
}

func TestOIDCRejections(t *testing.T) {
	st := alisim.DefaultState()
	st.Roles = append(st.Roles, alisim.Role{ARN: "acs:ram::1000000000000001:role/untrusting", Name: "untrusting"})
	ts := start(t, alisim.Options{State: st})
	ts.Sim.RegisterOIDCToken("opaque-registered-token", alisim.DefaultOIDCProviderARN)
	c := stsClient(t, ts, anonymous())
	for _, tc := range []struct {
		name   string
		req    *sts.AssumeRoleWithOIDCRequest
		code   string
		status int
	}{
		{"wrong issuer", assumeReq(serviceAccountToken(t, func(m map[string]any) { m["iss"] = "https://elsewhere.example.invalid" })), alisim.CodeOIDCIssuerMismatch, 401},
		{"wrong audience", assumeReq(serviceAccountToken(t, func(m map[string]any) { m["aud"] = "someone-else" })), alisim.CodeOIDCAudienceMismatch, 401},
		{"expired token", assumeReq(serviceAccountToken(t, func(m map[string]any) { m["exp"] = time.Now().Add(-time.Minute).Unix() })), alisim.CodeOIDCTokenExpired, 401},
		{"not a JWT", assumeReq("not-a-jwt"), alisim.CodeOIDCTokenInvalid, 401},
		{"unknown role", func() *sts.AssumeRoleWithOIDCRequest {
			r := assumeReq(serviceAccountToken(t, nil))
			r.RoleArn = "acs:ram::1:role/none"
			return r
		}(), alisim.CodeRoleNotExist, 404},
		{"unknown provider", func() *sts.AssumeRoleWithOIDCRequest {
			r := assumeReq(serviceAccountToken(t, nil))
			r.OIDCProviderArn = "acs:ram::1:oidc-provider/none"
			return r
		}(), alisim.CodeOIDCProviderNotExist, 404},
		{"role does not trust the provider", func() *sts.AssumeRoleWithOIDCRequest {
			r := assumeReq(serviceAccountToken(t, nil))
			r.RoleArn = "acs:ram::1000000000000001:role/untrusting"
			return r
		}(), alisim.CodeRoleNotTrusted, 401},
		{"duration too short", func() *sts.AssumeRoleWithOIDCRequest {
			r := assumeReq(serviceAccountToken(t, nil))
			r.DurationSeconds = requests.NewInteger(60)
			return r
		}(), alisim.CodeInvalidDuration, 400},
		{"missing token", assumeReq(""), alisim.CodeMissingParameter, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AssumeRoleWithOIDC(tc.req)
			wantServerError(t, err, tc.code, tc.status)
		})
	}
	t.Run("registered opaque token", func(t *testing.T) {
		resp, err := c.AssumeRoleWithOIDC(assumeReq("opaque-registered-token"))
		if err != nil {
			t.Fatalf("registered token rejected: %v", err)
		}
		cr := resp.Credentials
		_, err = vpcClient(t, ts, credentials.NewStsTokenCredential(cr.AccessKeyId, cr.AccessKeySecret, cr.SecurityToken)).DescribeRouteEntryList(describeReq())
		if err != nil {
			t.Fatalf("temporary key from a registered token: %v", err)
		}
	})
}

func TestTemporaryKeyCarriesRolePermissions(t *testing.T) {
	st := alisim.DefaultState()
	st.Roles = append(st.Roles, alisim.Role{ARN: "acs:ram::1:role/reader", Name: "reader", AllowedActions: []string{"vpc:Describe*"}})
	ts := start(t, alisim.Options{State: st})
	cr, err := ts.Sim.AssumeRole("acs:ram::1:role/reader", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := vpcClient(t, ts, credentials.NewStsTokenCredential(cr.AccessKeyID, cr.AccessKeySecret, cr.SecurityToken))
	if _, err := c.DescribeRouteEntryList(describeReq()); err != nil {
		t.Fatalf("permitted action: %v", err)
	}
	_, err = createEntry(t, c, "10.244.1.0/24", "i-2vcxxr")
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
	if _, err := c.DescribeVpcs(vpc.CreateDescribeVpcsRequest()); err != nil {
		t.Fatalf("action matched by vpc:Describe*: %v", err)
	}
	_, err = ecsClient(t, ts, credentials.NewStsTokenCredential(cr.AccessKeyID, cr.AccessKeySecret, cr.SecurityToken)).DescribeInstances(ecsDescribeReq())
	wantServerError(t, err, alisim.CodeForbiddenRAM, http.StatusForbidden)
}
