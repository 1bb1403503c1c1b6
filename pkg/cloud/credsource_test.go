package cloud

import (
	"errors"
	"strings"
	"testing"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// TestCredentialSourceIsExclusive covers --credential-source naming one
// source: only that source is used, and its absence is an error naming what
// is missing, never a fallback to another source such as the instance role.
func TestCredentialSourceIsExclusive(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	keys := map[string]string{EnvAccessKeyID: testKeyID, EnvAccessKeySecret: testKeySecret}
	for _, tc := range []struct {
		name   string
		source string
		env    map[string]string
		want   string // in the error; empty: success
	}{
		{"rrsa without any RRSA variable does not fall back to the environment key", SourceRRSA, keys, "ack-pod-identity-webhook"},
		{"rrsa half-injected", SourceRRSA, map[string]string{EnvRoleARN: alisim.DefaultRoleARN, EnvOIDCTokenFile: "/nonexistent"}, "only ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE set"},
		{"credentials-dir without --credentials-dir", SourceCredentialsDir, keys, "--credentials-dir is not set"},
		{"cloud-config without a key", SourceCloudConfig, keys, "holds no accessKeyID"},
		{"environment", SourceEnvironment, keys, ""},
		{"environment missing", SourceEnvironment, map[string]string{}, "are not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newCloud(t.Context(), withSource(simOptions(ts), tc.source), testCluster, nil, testTuning(tc.env, nil))
			if tc.want == "" {
				if err != nil || c.CredentialSource() != tc.source {
					t.Fatalf("err = %v, want source %s", err, tc.source)
				}
				return
			}
			var credErr *CredentialError
			if !errors.As(err, &credErr) || credErr.Source != tc.source || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a %s credential error containing %q", err, tc.source, tc.want)
			}
		})
	}

	t.Run("rrsa injected", func(t *testing.T) {
		c, err := newCloud(t.Context(), withSource(simOptions(ts), SourceRRSA), testCluster, nil, testTuning(rrsaEnv(t, ts), nil))
		if err != nil || c.CredentialSource() != SourceRRSA {
			t.Fatalf("err = %v source %v, want rrsa", err, c)
		}
	})
	t.Run("unknown source", func(t *testing.T) {
		if err := withSource(NewOptions(), "instance").Validate(); err == nil || !strings.Contains(err.Error(), "--credential-source must be one of") {
			t.Fatalf("Validate() = %v", err)
		}
	})
}

func withSource(o *Options, source string) *Options {
	o.CredentialSource = source
	return o
}

// TestSTSEndpointFromWebhookEnvironment checks that the STS endpoint the
// ack-pod-identity-webhook injects is used when --sts-endpoint is not set,
// and that the flag wins over it.
func TestSTSEndpointFromWebhookEnvironment(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	env := rrsaEnv(t, ts)
	env[EnvSTSEndpoint] = ts.APIEndpoint
	o := simOptions(ts)
	o.STSEndpoint = ""
	c, err := newCloud(t.Context(), o, testCluster, nil, testTuning(env, nil))
	if err != nil || c.CredentialSource() != SourceRRSA {
		t.Fatalf("with %s only: err = %v", EnvSTSEndpoint, err)
	}
	if n := ts.Sim.Counters()["AssumeRoleWithOIDC"]["Success"]; n != 1 {
		t.Fatalf("AssumeRoleWithOIDC successes = %d, want 1 at the injected endpoint", n)
	}

	env[EnvSTSEndpoint] = "127.0.0.1:1" // nothing listens: the flag must win
	if _, err := newCloud(t.Context(), simOptions(ts), testCluster, nil, testTuning(env, nil)); err != nil {
		t.Fatalf("--sts-endpoint set: err = %v, want the flag to win over %s", err, EnvSTSEndpoint)
	}

	env[EnvSTSEndpoint] = "https://sts.example/path?x"
	_, err = newCloud(t.Context(), o, testCluster, nil, testTuning(env, nil))
	if err == nil || !strings.Contains(err.Error(), EnvSTSEndpoint) {
		t.Fatalf("bad %s: err = %v, want one naming the variable", EnvSTSEndpoint, err)
	}
}
