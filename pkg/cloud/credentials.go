package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	"k8s.io/klog/v2"
)

// Environment variables read for credentials (the names the Alibaba SDKs
// and the ACK RRSA webhook use).
const (
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	EnvSecurityToken   = "ALIBABA_CLOUD_SECURITY_TOKEN"
	EnvRoleARN         = "ALIBABA_CLOUD_ROLE_ARN"
	EnvOIDCProviderARN = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
	EnvOIDCTokenFile   = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
	EnvRoleSessionName = "ALIBABA_CLOUD_ROLE_SESSION_NAME"
	// EnvSTSEndpoint is the STS endpoint the ack-pod-identity-webhook
	// injects (from its version 0.4.0); --sts-endpoint wins over it.
	EnvSTSEndpoint = "ALIBABA_CLOUD_STS_ENDPOINT"
)

// Files of --credentials-dir.
const (
	FileAccessKeyID     = "access-key-id"
	FileAccessKeySecret = "access-key-secret"
	FileSecurityToken   = "security-token"
)

// Credential sources, in the order they are tried.
const (
	SourceCredentialsDir = "credentials-dir"
	SourceEnvironment    = "environment"
	SourceRRSA           = "rrsa"
	SourceCloudConfig    = "cloud-config"
	SourceECSRAMRole     = "ecs-ram-role"
	// SourceAuto (--credential-source=auto) tries the sources above in
	// order.
	SourceAuto = "auto"
)

// credentialSources are the values of --credential-source.
var credentialSources = []string{SourceAuto, SourceCredentialsDir, SourceEnvironment, SourceRRSA, SourceCloudConfig, SourceECSRAMRole}

// CredentialError is a failure to obtain credentials. Its message names the
// source and what is wrong, never a key, secret or token.
type CredentialError struct {
	Source string
	Reason string
	// Class is set when the failure may pass by itself: STS throttled the
	// call (route.ErrThrottled), answered 5xx or a busy code
	// (route.ErrBusy), or could not be reached (ErrNetwork). Such a
	// failure is retried like any cloud call, never taken for rejected
	// credentials. Nil means the configuration or the trust must change.
	Class error
}

// Temporary reports whether the same request may succeed later.
func (e *CredentialError) Temporary() bool { return e.Class != nil }

// Error implements error.
func (e *CredentialError) Error() string {
	return "credentials from " + e.Source + ": " + e.Reason
}

// credentialEnv abstracts the process environment for tests.
type credentialEnv func(string) string

// credentialSettings is what selectCredentials needs to choose a source.
type credentialSettings struct {
	// source is --credential-source: auto, or the only source to use.
	source           string
	dir              string
	cloudConfig      *CloudConfig
	ramRole          string
	stsEndpoint      string
	insecureHTTP     bool
	callTimeout      time.Duration
	metadata         func() *metadataClient
	getenv           credentialEnv
	refreshBeforeEnd time.Duration
}

// selectCredentials picks the first configured credential source, in the
// documented order: credentials-dir, environment AccessKey, RRSA, the
// cloud-config AccessKey, the ECS RAM role. A source that is configured but
// incomplete (an AccessKey ID without its secret, half of the RRSA
// variables) is an error rather than a reason to fall through, so that a
// typo never silently selects other credentials.
//
// With --credential-source naming one source, only that source is used and
// its absence is an error: a pod the RRSA webhook did not inject (namespace
// not labelled, annotation misspelt) must fail, not run with the node's
// instance role, which may hold other permissions.
func selectCredentials(ctx context.Context, s credentialSettings) (credentials.CredentialsProvider, string, error) {
	if s.getenv == nil {
		s.getenv = os.Getenv
	}
	if s.source == "" {
		s.source = SourceAuto
	}
	for _, source := range credentialSources[1:] {
		if s.source != SourceAuto && s.source != source {
			continue
		}
		p, configured, err := credentialsFrom(ctx, source, s)
		if err != nil {
			return nil, "", err
		}
		if configured {
			return p, source, nil
		}
		if s.source == source {
			return nil, "", &CredentialError{Source: source, Reason: notConfigured(source)}
		}
	}
	return nil, "", &CredentialError{Source: s.source, Reason: "no credential source is configured"}
}

// notConfigured says what --credential-source=source lacks.
func notConfigured(source string) string {
	switch source {
	case SourceCredentialsDir:
		return "--credential-source=credentials-dir but --credentials-dir is not set"
	case SourceEnvironment:
		return fmt.Sprintf("--credential-source=environment but %s and %s are not set", EnvAccessKeyID, EnvAccessKeySecret)
	case SourceRRSA:
		return fmt.Sprintf("--credential-source=rrsa but %s, %s and %s are not set (with the ack-pod-identity-webhook: is the namespace labelled pod-identity.alibabacloud.com/injection=on and the ServiceAccount annotated pod-identity.alibabacloud.com/role-name?)", EnvRoleARN, EnvOIDCProviderARN, EnvOIDCTokenFile)
	case SourceCloudConfig:
		return "--credential-source=cloud-config but the cloud-config (--cloud-config) holds no accessKeyID and accessKeySecret"
	}
	return "not configured"
}

// credentialsFrom builds the provider of one source. configured is false
// when the source is not set up at all; a source set up only in part is an
// error.
func credentialsFrom(ctx context.Context, source string, s credentialSettings) (p credentials.CredentialsProvider, configured bool, err error) {
	getenv := s.getenv
	switch source {
	case SourceCredentialsDir:
		if s.dir == "" {
			return nil, false, nil
		}
		fp := newFileCredentials(s.dir, klog.FromContext(ctx))
		if _, err := fp.GetCredentials(); err != nil {
			return nil, true, err
		}
		return fp, true, nil

	case SourceEnvironment:
		id, secret, token := getenv(EnvAccessKeyID), getenv(EnvAccessKeySecret), getenv(EnvSecurityToken)
		switch {
		case id != "" && secret != "":
			// The SDK's static providers fit: nothing to refresh.
			if token != "" {
				return credentials.NewStaticSTSCredentialsProvider(id, secret, token), true, nil
			}
			return credentials.NewStaticAKCredentialsProvider(id, secret), true, nil
		case id != "" || secret != "":
			return nil, true, &CredentialError{Source: SourceEnvironment, Reason: fmt.Sprintf("%s and %s must be set together", EnvAccessKeyID, EnvAccessKeySecret)}
		}
		return nil, false, nil

	case SourceRRSA:
		roleARN, providerARN, tokenFile := getenv(EnvRoleARN), getenv(EnvOIDCProviderARN), getenv(EnvOIDCTokenFile)
		switch {
		case roleARN != "" && providerARN != "" && tokenFile != "":
		case roleARN != "" || providerARN != "" || tokenFile != "":
			return nil, true, &CredentialError{Source: SourceRRSA, Reason: fmt.Sprintf("%s, %s and %s must be set together; only %s set (a half-injected environment)",
				EnvRoleARN, EnvOIDCProviderARN, EnvOIDCTokenFile, setNames(getenv, EnvRoleARN, EnvOIDCProviderARN, EnvOIDCTokenFile))}
		default:
			return nil, false, nil
		}
		if s.stsEndpoint == "" {
			return nil, true, &CredentialError{Source: SourceRRSA, Reason: "no STS endpoint (set --sts-endpoint or --region)"}
		}
		op := newOIDCCredentials(oidcConfig{
			roleARN:       roleARN,
			providerARN:   providerARN,
			tokenFile:     tokenFile,
			sessionName:   getenv(EnvRoleSessionName),
			endpoint:      s.stsEndpoint,
			insecureHTTP:  s.insecureHTTP,
			timeout:       s.callTimeout,
			refreshBefore: s.refreshBeforeEnd,
		})
		if _, err := op.fetch(ctx); err != nil {
			return nil, true, err
		}
		return op, true, nil

	case SourceCloudConfig:
		cc := s.cloudConfig
		if cc == nil || (cc.AccessKeyID == "" && cc.AccessKeySecret == "") {
			return nil, false, nil
		}
		if cc.AccessKeyID == "" || cc.AccessKeySecret == "" {
			return nil, true, &CredentialError{Source: SourceCloudConfig, Reason: "accessKeyID and accessKeySecret must be set together"}
		}
		return credentials.NewStaticAKCredentialsProvider(cc.AccessKeyID, cc.AccessKeySecret), true, nil

	case SourceECSRAMRole:
		if s.metadata == nil {
			return nil, true, &CredentialError{Source: SourceECSRAMRole, Reason: "no metadata service configured"}
		}
		rp := newRAMRoleCredentials(s.metadata(), s.ramRole, s.callTimeout, s.refreshBeforeEnd)
		if _, err := rp.fetch(ctx); err != nil {
			return nil, true, err
		}
		return rp, true, nil
	}
	return nil, false, fmt.Errorf("unknown credential source %q", source)
}

// setNames lists which of the variables are set, for an error message.
func setNames(getenv credentialEnv, names ...string) string {
	var set []string
	for _, n := range names {
		if getenv(n) != "" {
			set = append(set, n)
		}
	}
	return strings.Join(set, ", ")
}

// fileCredentials reads an AccessKey from a directory, typically a mounted
// Kubernetes Secret, before every call, so that a rotated Secret takes
// effect without a restart. The SDK has no provider that re-reads files.
//
// Kubernetes updates Secret volumes by swapping a symlink, so the three
// files always change together. Reading three small files per call is cheap
// next to the HTTPS call it signs; the contents are compared with the last
// read only to log the rotation.
type fileCredentials struct {
	dir    string
	logger klog.Logger

	mu   sync.Mutex
	last *credentials.Credentials
}

var _ credentials.CredentialsProvider = (*fileCredentials)(nil)

func newFileCredentials(dir string, logger klog.Logger) *fileCredentials {
	return &fileCredentials{dir: dir, logger: logger}
}

func (p *fileCredentials) read(name string, required bool) (string, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return "", &CredentialError{Source: SourceCredentialsDir, Reason: fmt.Sprintf("reading %s: %v", filepath.Join(p.dir, name), err)}
	}
	v := strings.TrimSpace(string(b))
	if v == "" && required {
		return "", &CredentialError{Source: SourceCredentialsDir, Reason: fmt.Sprintf("%s is empty", filepath.Join(p.dir, name))}
	}
	return v, nil
}

// GetCredentials implements credentials.CredentialsProvider.
func (p *fileCredentials) GetCredentials() (*credentials.Credentials, error) {
	id, err := p.read(FileAccessKeyID, true)
	if err != nil {
		return nil, err
	}
	secret, err := p.read(FileAccessKeySecret, true)
	if err != nil {
		return nil, err
	}
	token, err := p.read(FileSecurityToken, false)
	if err != nil {
		return nil, err
	}
	cc := &credentials.Credentials{AccessKeyId: id, AccessKeySecret: secret, SecurityToken: token, ProviderName: p.GetProviderName()}
	p.mu.Lock()
	rotated := p.last != nil && (p.last.AccessKeyId != id || p.last.AccessKeySecret != secret || p.last.SecurityToken != token)
	p.last = cc
	p.mu.Unlock()
	if rotated {
		p.logger.Info("Credentials in the credentials directory changed; using the new ones", "dir", p.dir)
	}
	return cc, nil
}

// GetProviderName implements credentials.CredentialsProvider.
func (p *fileCredentials) GetProviderName() string { return "vpc_route_publisher_credentials_dir" }

// sessionCache holds temporary credentials and refreshes them before they
// expire. A failed refresh keeps serving the old credentials while they are
// still valid, so a short STS or metadata outage does not stop the
// controller.
type sessionCache struct {
	source        string
	refreshBefore time.Duration
	now           func() time.Time
	fetchFn       func(ctx context.Context) (*credentials.Credentials, time.Time, error)
	timeout       time.Duration

	mu      sync.Mutex
	current *credentials.Credentials
	expiry  time.Time
}

func (c *sessionCache) fetch(ctx context.Context) (*credentials.Credentials, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.current != nil && c.now().Before(c.expiry.Add(-c.refreshBefore)) {
		return c.current, nil
	}
	cc, expiry, err := c.fetchFn(ctx)
	if err != nil {
		if c.current != nil && c.now().Before(c.expiry) {
			klog.FromContext(ctx).Error(err, "Refreshing temporary credentials failed; using the current ones until they expire", "source", c.source, "expiry", c.expiry)
			return c.current, nil
		}
		return nil, err
	}
	c.current, c.expiry = cc, expiry
	return cc, nil
}

// GetCredentials implements credentials.CredentialsProvider. The SDK gives
// it no context, so the refresh is bounded by the call timeout.
func (c *sessionCache) GetCredentials() (*credentials.Credentials, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.fetch(ctx)
}

func defaultRefreshBefore(d time.Duration) time.Duration {
	if d <= 0 {
		return 5 * time.Minute
	}
	return d
}

// oidcCredentials implements RRSA: it exchanges the projected service
// account token for temporary credentials with STS AssumeRoleWithOIDC.
//
// The SDK's OIDCCredentialsProvider is not used because it always dials
// https://<endpoint> with its own transport (the simulator and test
// endpoints speak HTTP), keeps its cached credentials in unsynchronized
// fields although the SDK calls providers from concurrent requests, and
// puts the raw STS response body into its errors.
type oidcCredentials struct {
	sessionCache
	cfg  oidcConfig
	http *http.Client
}

type oidcConfig struct {
	roleARN, providerARN, tokenFile, sessionName string
	endpoint                                     string
	insecureHTTP                                 bool
	timeout                                      time.Duration
	duration                                     time.Duration
	refreshBefore                                time.Duration
}

var _ credentials.CredentialsProvider = (*oidcCredentials)(nil)

func newOIDCCredentials(cfg oidcConfig) *oidcCredentials {
	if cfg.sessionName == "" {
		cfg.sessionName = "vpc-route-publisher"
	}
	if cfg.duration == 0 {
		cfg.duration = time.Hour
	}
	p := &oidcCredentials{cfg: cfg, http: &http.Client{Timeout: cfg.timeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	p.sessionCache = sessionCache{
		source:        SourceRRSA,
		refreshBefore: defaultRefreshBefore(cfg.refreshBefore),
		now:           time.Now,
		fetchFn:       p.assumeRoleRetrying,
		timeout:       cfg.timeout,
	}
	return p
}

// stsRetry paces the retries of a throttled or failing AssumeRoleWithOIDC
// within one credentials fetch (bounded by the fetch's context, i.e. the
// call timeout).
var stsRetry = struct {
	attempts int
	backoff  backoff
}{attempts: 4, backoff: backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Factor: 2}}

// assumeRoleRetrying calls AssumeRoleWithOIDC and retries the failures STS
// documents as passing: throttling (Throttling*, HTTP 429), 5xx and busy
// codes, and unreachable endpoints. AuthenticationFail.* (401) and every
// other refusal end it at once.
func (p *oidcCredentials) assumeRoleRetrying(ctx context.Context) (*credentials.Credentials, time.Time, error) {
	for attempt := 0; ; attempt++ {
		cc, expiry, err := p.assumeRole(ctx)
		var credErr *CredentialError
		if err == nil || attempt+1 >= stsRetry.attempts || !errors.As(err, &credErr) || !credErr.Temporary() {
			return cc, expiry, err
		}
		wait := stsRetry.backoff.delay(attempt)
		klog.FromContext(ctx).V(2).Info("Retrying AssumeRoleWithOIDC", "reason", credErr.Reason, "attempt", attempt+1, "wait", wait)
		if !sleepCtx(ctx, wait) {
			return cc, expiry, err
		}
	}
}

// GetProviderName implements credentials.CredentialsProvider.
func (p *oidcCredentials) GetProviderName() string { return "vpc_route_publisher_rrsa" }

type stsCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken"`
	Expiration      string `json:"Expiration"`
}

type stsResponse struct {
	RequestID   string          `json:"RequestId"`
	Code        string          `json:"Code"`
	Credentials *stsCredentials `json:"Credentials"`
}

func (p *oidcCredentials) assumeRole(ctx context.Context) (*credentials.Credentials, time.Time, error) {
	fail := func(format string, args ...any) (*credentials.Credentials, time.Time, error) {
		return nil, time.Time{}, &CredentialError{Source: SourceRRSA, Reason: fmt.Sprintf(format, args...)}
	}
	transient := func(class error, format string, args ...any) (*credentials.Credentials, time.Time, error) {
		return nil, time.Time{}, &CredentialError{Source: SourceRRSA, Reason: fmt.Sprintf(format, args...), Class: class}
	}
	token, err := os.ReadFile(p.cfg.tokenFile)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return fail("reading the OIDC token file %s: %v", p.cfg.tokenFile, err)
	}
	if len(strings.TrimSpace(string(token))) == 0 {
		return fail("the OIDC token file %s is empty", p.cfg.tokenFile)
	}
	scheme := "https"
	if p.cfg.insecureHTTP {
		scheme = "http"
	}
	query := url.Values{
		"Version":   {"2015-04-01"},
		"Action":    {"AssumeRoleWithOIDC"},
		"Format":    {"JSON"},
		"Timestamp": {p.now().UTC().Format("2006-01-02T15:04:05Z")},
	}
	form := url.Values{
		"RoleArn":         {p.cfg.roleARN},
		"OIDCProviderArn": {p.cfg.providerARN},
		"OIDCToken":       {strings.TrimSpace(string(token))},
		"RoleSessionName": {p.cfg.sessionName},
		"DurationSeconds": {fmt.Sprint(int(p.cfg.duration / time.Second))},
	}
	u := scheme + "://" + p.cfg.endpoint + "/?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return fail("building the AssumeRoleWithOIDC request for endpoint %s", p.cfg.endpoint)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.http.Do(req)
	if err != nil {
		if apiErr := transportError("AssumeRoleWithOIDC", err); apiErr != nil {
			return transient(ErrNetwork, "%v", apiErr)
		}
		return transient(ErrNetwork, "AssumeRoleWithOIDC at %s failed", p.cfg.endpoint)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail("reading the AssumeRoleWithOIDC response: %v", err)
	}
	var out stsResponse
	if err := json.Unmarshal(body, &out); err != nil {
		if class := classifyCode("", resp.StatusCode); isRetryableClass(class) {
			return transient(class, "AssumeRoleWithOIDC: HTTP %d with an unparsable body", resp.StatusCode)
		}
		return fail("AssumeRoleWithOIDC: HTTP %d with an unparsable body", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		// Throttling and 5xx pass; AuthenticationFail.* (401) and the
		// rest need the role, the provider or the token fixed.
		if class := classifyCode(out.Code, resp.StatusCode); isRetryableClass(class) {
			return transient(class, "AssumeRoleWithOIDC: HTTP %d code %s request %s", resp.StatusCode, out.Code, out.RequestID)
		}
		return fail("AssumeRoleWithOIDC: HTTP %d code %s request %s", resp.StatusCode, out.Code, out.RequestID)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyID == "" || c.AccessKeySecret == "" || c.SecurityToken == "" {
		return fail("AssumeRoleWithOIDC: request %s returned no credentials", out.RequestID)
	}
	expiry, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil {
		return fail("AssumeRoleWithOIDC: request %s returned an unparsable expiration", out.RequestID)
	}
	klog.FromContext(ctx).V(2).Info("Obtained temporary credentials with RRSA", "role", p.cfg.roleARN, "expiry", expiry)
	return &credentials.Credentials{
		AccessKeyId:     c.AccessKeyID,
		AccessKeySecret: c.AccessKeySecret,
		SecurityToken:   c.SecurityToken,
		ProviderName:    p.GetProviderName(),
	}, expiry, nil
}

// ramRoleCredentials gets the temporary credentials of the instance's RAM
// role from the metadata service (IMDSv2). The SDK's
// ECSRAMRoleCredentialsProvider is not used because its metadata address is
// hard-coded, so it could be neither tested nor pointed at a proxy.
type ramRoleCredentials struct {
	sessionCache
	md   *metadataClient
	role string
}

var _ credentials.CredentialsProvider = (*ramRoleCredentials)(nil)

func newRAMRoleCredentials(md *metadataClient, role string, timeout, refreshBefore time.Duration) *ramRoleCredentials {
	p := &ramRoleCredentials{md: md, role: role}
	p.sessionCache = sessionCache{
		source:        SourceECSRAMRole,
		refreshBefore: defaultRefreshBefore(refreshBefore),
		now:           time.Now,
		fetchFn:       p.fetchRole,
		timeout:       timeout,
	}
	return p
}

// GetProviderName implements credentials.CredentialsProvider.
func (p *ramRoleCredentials) GetProviderName() string { return "vpc_route_publisher_ecs_ram_role" }

func (p *ramRoleCredentials) fetchRole(ctx context.Context) (*credentials.Credentials, time.Time, error) {
	role := p.role
	if role == "" {
		var err error
		if role, err = p.md.RAMRole(ctx); err != nil {
			return nil, time.Time{}, &CredentialError{Source: SourceECSRAMRole, Reason: err.Error()}
		}
	}
	rc, err := p.md.RoleCredentials(ctx, role)
	if err != nil {
		return nil, time.Time{}, &CredentialError{Source: SourceECSRAMRole, Reason: err.Error()}
	}
	expiry, err := time.Parse(time.RFC3339, rc.Expiration)
	if err != nil {
		return nil, time.Time{}, &CredentialError{Source: SourceECSRAMRole, Reason: fmt.Sprintf("credentials of RAM role %s have an unparsable expiration", role)}
	}
	return &credentials.Credentials{
		AccessKeyId:     rc.AccessKeyID,
		AccessKeySecret: rc.AccessKeySecret,
		SecurityToken:   rc.SecurityToken,
		ProviderName:    p.GetProviderName(),
	}, expiry, nil
}
