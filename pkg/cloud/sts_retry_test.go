package cloud

import (
	"errors"
	"testing"
	"time"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// TestRRSARetriesThrottledAndFailingSTS: STS throttles or fails with 5xx
// a few times in a row; the publisher retries and gets its credentials
// instead of reporting them rejected.
func TestRRSARetriesThrottledAndFailingSTS(t *testing.T) {
	for _, tc := range []struct {
		code   string
		status int
	}{
		{"Throttling.User", 400},
		{"Throttling", 429},
		{"ServiceUnavailable", 503},
		{"InternalError", 500},
	} {
		t.Run(tc.code, func(t *testing.T) {
			ts := startSim(t, alisim.Options{})
			env := rrsaEnv(t, ts)
			ts.Sim.InjectFault(alisim.Fault{Action: "AssumeRoleWithOIDC", Code: tc.code, HTTPStatus: tc.status, Count: 2})
			c := newTestCloud(t, ts, nil, testTuning(env, nil))
			if c.CredentialSource() != SourceRRSA {
				t.Fatalf("source %s, want rrsa", c.CredentialSource())
			}
			if _, err := c.Table().List(c.ctx); err != nil {
				t.Fatal(err)
			}
			counts := ts.Sim.Counters()["AssumeRoleWithOIDC"]
			if counts[tc.code] != 2 || counts["Success"] != 1 {
				t.Fatalf("AssumeRoleWithOIDC answers %v, want 2 × %s then a success", counts, tc.code)
			}
		})
	}
}

// TestRRSAThrottledIsNotUnauthorized: an STS that keeps throttling fails
// the fetch with a temporary error, which the call layer retries; a 401
// AuthenticationFail.* is final and unauthorized, asked once.
func TestRRSAThrottledIsNotUnauthorized(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	env := rrsaEnv(t, ts)
	p := newOIDCCredentials(oidcConfig{roleARN: env[EnvRoleARN], providerARN: env[EnvOIDCProviderARN], tokenFile: env[EnvOIDCTokenFile],
		endpoint: ts.APIEndpoint, insecureHTTP: true, timeout: 5 * time.Second})

	ts.Sim.InjectFault(alisim.Fault{Action: "AssumeRoleWithOIDC", Code: "Throttling.User"})
	_, err := p.fetch(t.Context())
	var credErr *CredentialError
	if !errors.As(err, &credErr) || !credErr.Temporary() {
		t.Fatalf("persistent throttling: %v, want a temporary credential error", err)
	}
	if e := classify("DescribeRouteEntryList", err); !errors.Is(e, route.ErrThrottled) || !e.Retryable() || errors.Is(e, route.ErrUnauthorized) {
		t.Fatalf("persistent throttling classified as %v, want throttled and retryable", e)
	}
	if n := ts.Sim.Counters()["AssumeRoleWithOIDC"]["Throttling.User"]; n != stsRetry.attempts {
		t.Fatalf("%d attempts, want %d", n, stsRetry.attempts)
	}

	ts.Sim.ClearFaults()
	ts.Sim.ResetCounters()
	writeFile(t, env[EnvOIDCTokenFile], "unregistered-token")
	_, err = p.fetch(t.Context())
	if !errors.As(err, &credErr) || credErr.Temporary() {
		t.Fatalf("rejected token: %v, want a final credential error", err)
	}
	if e := classify("DescribeRouteEntryList", err); !errors.Is(e, route.ErrUnauthorized) || e.Retryable() {
		t.Fatalf("rejected token classified as %v, want unauthorized", e)
	}
	counts := ts.Sim.Counters()["AssumeRoleWithOIDC"]
	if counts[alisim.CodeOIDCTokenInvalid] != 1 || len(counts) != 1 {
		t.Fatalf("AssumeRoleWithOIDC answers %v, want one %s (not retried)", counts, alisim.CodeOIDCTokenInvalid)
	}
}
