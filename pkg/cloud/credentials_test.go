package cloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2/ktesting"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeKeyDir writes a credentials directory the way the kubelet updates a
// Secret volume: the files live in a timestamped directory and a "..data"
// symlink is swapped atomically.
func writeKeyDir(t *testing.T, dir, id, secret string) {
	t.Helper()
	gen := filepath.Join(dir, fmt.Sprintf("..%d", time.Now().UnixNano()))
	if err := os.Mkdir(gen, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(gen, FileAccessKeyID), id+"\n")
	writeFile(t, filepath.Join(gen, FileAccessKeySecret), secret+"\n")
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{FileAccessKeyID, FileAccessKeySecret} {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCredentialsDirRotationNeedsNoRestart(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	dir := t.TempDir()
	writeKeyDir(t, dir, testKeyID, testKeySecret)
	// The environment holds other (invalid) keys: the directory wins.
	env := map[string]string{EnvAccessKeyID: "LTAIenv", EnvAccessKeySecret: "env-secret"}
	c := newTestCloud(t, ts, func(o *Options) { o.CredentialsDir = dir }, testTuning(env, nil))
	if c.CredentialSource() != SourceCredentialsDir {
		t.Fatalf("credential source %s, want %s", c.CredentialSource(), SourceCredentialsDir)
	}
	if _, err := c.Table().List(c.ctx); err != nil {
		t.Fatalf("List with the first key: %v", err)
	}

	// Rotate: a new key is issued, the Secret updated, the old key disabled.
	ts.Sim.AddAccessKey("LTAIrotated0000000002", "rotated-secret-xyz")
	writeKeyDir(t, dir, "LTAIrotated0000000002", "rotated-secret-xyz")
	if err := ts.Sim.SetAccessKeyDisabled(testKeyID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Table().List(c.ctx); err != nil {
		t.Fatalf("List after rotating the mounted key: %v", err)
	}

	// A broken Secret is reported as a credential problem, without the key.
	writeKeyDir(t, dir, "LTAIrotated0000000002", "wrong-secret-abc")
	_, err := c.Table().List(c.ctx)
	if !errors.Is(err, route.ErrUnauthorized) {
		t.Fatalf("List with a wrong secret: %v, want ErrUnauthorized", err)
	}
	for _, secret := range []string{"wrong-secret-abc", "LTAIrotated0000000002"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains a credential", err)
		}
	}
}

func TestCredentialsDirMissingFileIsAStartupError(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, FileAccessKeyID), testKeyID)
	o := simOptions(ts)
	o.CredentialsDir = dir
	_, err := newCloud(t.Context(), o, testCluster, nil, testTuning(nil, nil))
	var credErr *CredentialError
	if !errors.As(err, &credErr) || credErr.Source != SourceCredentialsDir || !strings.Contains(err.Error(), FileAccessKeySecret) {
		t.Fatalf("err = %v, want a credentials-dir error naming %s", err, FileAccessKeySecret)
	}
	if strings.Contains(err.Error(), testKeyID) {
		t.Errorf("error %q contains the key ID", err)
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	t.Run("AccessKey", func(t *testing.T) {
		c := newTestCloud(t, ts, nil, testTuning(nil, nil))
		if c.CredentialSource() != SourceEnvironment {
			t.Fatalf("source %s", c.CredentialSource())
		}
		if _, err := c.Table().List(c.ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("STS token", func(t *testing.T) {
		tmp, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{EnvAccessKeyID: tmp.AccessKeyID, EnvAccessKeySecret: tmp.AccessKeySecret, EnvSecurityToken: tmp.SecurityToken}
		c := newTestCloud(t, ts, nil, testTuning(env, nil))
		if _, err := c.Table().List(c.ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ID without secret", func(t *testing.T) {
		_, err := newCloud(t.Context(), simOptions(ts), testCluster, nil, testTuning(map[string]string{EnvAccessKeyID: testKeyID}, nil))
		var credErr *CredentialError
		if !errors.As(err, &credErr) || credErr.Source != SourceEnvironment {
			t.Fatalf("err = %v, want an environment credential error", err)
		}
	})
}

func rrsaEnv(t *testing.T, ts *alisim.TestServer) map[string]string {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "projected-service-account-token-1"
	writeFile(t, tokenFile, token)
	ts.Sim.RegisterOIDCToken(token, alisim.DefaultOIDCProviderARN)
	return map[string]string{
		EnvRoleARN:         alisim.DefaultRoleARN,
		EnvOIDCProviderARN: alisim.DefaultOIDCProviderARN,
		EnvOIDCTokenFile:   tokenFile,
	}
}

func TestCredentialsRRSA(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	env := rrsaEnv(t, ts)
	c := newTestCloud(t, ts, nil, testTuning(env, nil))
	if c.CredentialSource() != SourceRRSA {
		t.Fatalf("source %s, want rrsa", c.CredentialSource())
	}
	if _, err := c.Table().List(c.ctx); err != nil {
		t.Fatal(err)
	}
	if n := ts.Sim.Counters()["AssumeRoleWithOIDC"]["Success"]; n != 1 {
		t.Errorf("AssumeRoleWithOIDC calls = %d, want 1 (credentials are cached)", n)
	}

	t.Run("partial configuration", func(t *testing.T) {
		_, err := newCloud(t.Context(), simOptions(ts), testCluster, nil, testTuning(map[string]string{EnvRoleARN: alisim.DefaultRoleARN}, nil))
		var credErr *CredentialError
		if !errors.As(err, &credErr) || credErr.Source != SourceRRSA {
			t.Fatalf("err = %v, want an RRSA credential error", err)
		}
	})
	t.Run("rejected token", func(t *testing.T) {
		bad := rrsaEnv(t, ts)
		writeFile(t, bad[EnvOIDCTokenFile], "unregistered-token")
		_, err := newCloud(t.Context(), simOptions(ts), testCluster, nil, testTuning(bad, nil))
		if err == nil || !strings.Contains(err.Error(), "AuthenticationFail") || strings.Contains(err.Error(), "unregistered-token") {
			t.Fatalf("err = %v, want the STS code and not the token", err)
		}
	})
}

func TestRRSARefreshesBeforeExpiry(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	env := rrsaEnv(t, ts)
	p := newOIDCCredentials(oidcConfig{
		roleARN: env[EnvRoleARN], providerARN: env[EnvOIDCProviderARN], tokenFile: env[EnvOIDCTokenFile],
		endpoint: ts.APIEndpoint, insecureHTTP: true, timeout: 5 * time.Second, duration: time.Hour,
		refreshBefore: 5 * time.Minute,
	})
	now := time.Now()
	p.now = func() time.Time { return now }
	first, err := p.GetCredentials()
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.GetCredentials()
	if err != nil || again.AccessKeyId != first.AccessKeyId {
		t.Fatalf("second GetCredentials = %v, %v; want the cached credentials", again, err)
	}
	now = now.Add(56 * time.Minute) // within 5 minutes of the 1h expiry
	refreshed, err := p.GetCredentials()
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.AccessKeyId == first.AccessKeyId || refreshed.SecurityToken == "" {
		t.Errorf("credentials were not refreshed before expiry")
	}
	if n := ts.Sim.Counters()["AssumeRoleWithOIDC"]["Success"]; n != 2 {
		t.Errorf("AssumeRoleWithOIDC calls = %d, want 2", n)
	}

	// STS down: the current credentials keep working until they expire.
	// The simulator's clock is the wall clock: every credential it issues
	// expires an hour after the test started.
	ts.Sim.InjectFault(alisim.Fault{Action: "AssumeRoleWithOIDC", Code: alisim.CodeServiceUnavailable})
	now = now.Add(time.Minute)
	kept, err := p.GetCredentials()
	if err != nil || kept.AccessKeyId != refreshed.AccessKeyId {
		t.Fatalf("GetCredentials during an STS outage = %v, %v; want the still valid credentials", kept, err)
	}
	now = now.Add(10 * time.Minute)
	if _, err := p.GetCredentials(); err == nil {
		t.Fatal("expired credentials were served while STS is down")
	}
}

func TestCredentialsFromCloudConfig(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	path := filepath.Join(t.TempDir(), "cloud-config.json")
	writeFile(t, path, fmt.Sprintf(`{"Global": {"accessKeyID": %q, "accessKeySecret": %q, "region": %q, "vpcid": %q, "routeTableIDs": %q, "clusterID": %q}}`,
		base64.StdEncoding.EncodeToString([]byte(testKeyID)), base64.StdEncoding.EncodeToString([]byte(testKeySecret)),
		alisim.DefaultRegion, alisim.DefaultVPCID, alisim.DefaultTableID, testCluster))
	c := newTestCloud(t, ts, func(o *Options) {
		o.Region, o.VPCID = "", ""
		o.CloudConfig = path
	}, testTuning(map[string]string{}, nil))
	if c.CredentialSource() != SourceCloudConfig || c.Region() != alisim.DefaultRegion || c.VPCID() != alisim.DefaultVPCID {
		t.Fatalf("source %s region %s vpc %s", c.CredentialSource(), c.Region(), c.VPCID())
	}
	if _, err := c.Table().List(c.ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("flag and cloud-config disagree", func(t *testing.T) {
		o := simOptions(ts)
		o.CloudConfig = path
		o.Region = "cn-hangzhou"
		_, err := newCloud(t.Context(), o, testCluster, nil, testTuning(nil, nil))
		if err == nil || !strings.Contains(err.Error(), "--region") || !strings.Contains(err.Error(), "disagree") {
			t.Fatalf("err = %v, want a disagreement naming --region", err)
		}
	})
	t.Run("cluster ID disagrees", func(t *testing.T) {
		o := simOptions(ts)
		o.CloudConfig = path
		_, err := newCloud(t.Context(), o, "other-cluster", nil, testTuning(nil, nil))
		if err == nil || !strings.Contains(err.Error(), "--cluster-id") {
			t.Fatalf("err = %v, want a disagreement naming --cluster-id", err)
		}
	})
}

func TestCredentialsFromECSRAMRoleAndSettingsFromMetadata(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	custom, err := ts.Sim.AddTable(alisim.RouteTable{VPCID: alisim.DefaultVPCID})
	if err != nil {
		t.Fatal(err)
	}
	c := newTestCloud(t, ts, func(o *Options) { o.Region, o.VPCID = "", "" }, testTuning(map[string]string{}, nil))
	if c.CredentialSource() != SourceECSRAMRole {
		t.Fatalf("source %s, want ecs-ram-role", c.CredentialSource())
	}
	if c.Region() != alisim.DefaultRegion || c.VPCID() != alisim.DefaultVPCID {
		t.Fatalf("region %s vpc %s from metadata", c.Region(), c.VPCID())
	}
	infos, err := c.Table().Tables(c.ctx)
	if err != nil || len(infos) != 2 {
		t.Fatalf("tables %v, %v; want the system table and %s", infos, err, custom.ID)
	}
	if _, err := c.Instances().Status(c.ctx, []string{"i-2vcxxr"}); err != nil {
		t.Fatal(err)
	}
}

func TestMissingRegionIsAClearStartupError(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	o := simOptions(ts)
	o.Region = ""
	o.MetadataEndpoint = "http://127.0.0.1:1"
	_, err := newCloud(t.Context(), o, testCluster, nil, testTuning(nil, nil))
	if err == nil || !strings.Contains(err.Error(), "--region is not set") {
		t.Fatalf("err = %v, want a missing-region error", err)
	}
}

// TestSecretsNeverInErrorsOrLogs drives the failure paths that are most
// likely to leak: a rejected signature, and a transport error whose URL
// carries AccessKeyId and SecurityToken in its query.
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	ts := startSim(t, alisim.Options{})
	tmp, err := ts.Sim.AssumeRole(alisim.DefaultRoleARN, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{tmp.AccessKeyID, tmp.AccessKeySecret, tmp.SecurityToken, testKeySecret}
	check := func(t *testing.T, what, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains a credential: %s", what, text)
			}
		}
	}
	run := func(t *testing.T, env map[string]string, mutate func(*Options)) error {
		logger, ctx := ktesting.NewTestContext(t)
		o := simOptions(ts)
		o.CallTimeout, o.RouteWaitTimeout = 300*time.Millisecond, 300*time.Millisecond
		mutate(o)
		_, err := newCloud(ctx, o, testCluster, prometheus.NewRegistry(), testTuning(env, nil))
		if err == nil {
			t.Fatal("newCloud succeeded, want a failure")
		}
		check(t, "error", err.Error())
		check(t, "log", logger.GetSink().(ktesting.Underlier).GetBuffer().String())
		return err
	}
	t.Run("wrong secret", func(t *testing.T) {
		env := map[string]string{EnvAccessKeyID: tmp.AccessKeyID, EnvAccessKeySecret: "not-" + tmp.AccessKeySecret, EnvSecurityToken: tmp.SecurityToken}
		secrets = append(secrets, "not-"+tmp.AccessKeySecret)
		err := run(t, env, func(*Options) {})
		if !errors.Is(err, route.ErrUnauthorized) {
			t.Errorf("err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		env := map[string]string{EnvAccessKeyID: tmp.AccessKeyID, EnvAccessKeySecret: tmp.AccessKeySecret, EnvSecurityToken: tmp.SecurityToken}
		err := run(t, env, func(o *Options) { o.VPCEndpoint = "127.0.0.1:1" })
		if !errors.Is(err, ErrNetwork) {
			t.Errorf("err = %v, want ErrNetwork", err)
		}
	})
	t.Run("bad cloud-config key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cc.json")
		writeFile(t, path, `{"Global": {"accessKeyID": "`+tmp.AccessKeyID+`", "accessKeySecret": "`+tmp.AccessKeySecret+`"}}`)
		err := run(t, map[string]string{}, func(o *Options) { o.CloudConfig = path })
		if !strings.Contains(err.Error(), "base64") {
			t.Errorf("err = %v, want the key named as not base64", err)
		}
	})
}

func TestSelectCredentialsOrder(t *testing.T) {
	dir := t.TempDir()
	writeKeyDir(t, dir, "LTAIdir", "dir-secret")
	cc := &CloudConfig{AccessKeyID: "LTAIcc", AccessKeySecret: "cc-secret"}
	env := map[string]string{EnvAccessKeyID: "LTAIenv", EnvAccessKeySecret: "env-secret"}
	for _, tc := range []struct {
		name string
		s    credentialSettings
		want string
		id   string
	}{
		{"dir first", credentialSettings{dir: dir, cloudConfig: cc, getenv: envMap(env)}, SourceCredentialsDir, "LTAIdir"},
		{"environment before cloud-config", credentialSettings{cloudConfig: cc, getenv: envMap(env)}, SourceEnvironment, "LTAIenv"},
		{"cloud-config", credentialSettings{cloudConfig: cc, getenv: envMap(nil)}, SourceCloudConfig, "LTAIcc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, source, err := selectCredentials(context.Background(), tc.s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.GetCredentials()
			if err != nil {
				t.Fatal(err)
			}
			if source != tc.want || got.AccessKeyId != tc.id {
				t.Errorf("source %s key %s, want %s %s", source, got.AccessKeyId, tc.want, tc.id)
			}
		})
	}
}
