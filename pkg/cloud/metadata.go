package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultMetadataEndpoint is the ECS instance metadata service.
const DefaultMetadataEndpoint = "http://100.100.100.200"

// metadataClient reads the ECS instance metadata service in IMDSv2 mode
// (session token first, then the token on every read), which is what the
// hardened mode of ECS requires.
type metadataClient struct {
	endpoint string
	http     *http.Client

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
	now         func() time.Time
}

const (
	metadataTokenTTL    = 6 * time.Hour
	metadataTokenHeader = "X-aliyun-ecs-metadata-token"
	metadataTTLHeader   = "X-aliyun-ecs-metadata-token-ttl-seconds"
	metadataMaxBody     = 64 << 10
)

func newMetadataClient(endpoint string, timeout time.Duration) *metadataClient {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // the metadata service is link-local; never via a proxy
	return &metadataClient{
		endpoint: strings.TrimSuffix(endpoint, "/"),
		http:     &http.Client{Timeout: timeout, Transport: transport},
		now:      time.Now,
	}
}

// sessionToken returns a cached IMDSv2 token, fetching a new one when the
// cached one is about to expire.
func (m *metadataClient) sessionToken(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.token != "" && m.now().Before(m.tokenExpiry.Add(-time.Minute)) {
		return m.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.endpoint+"/latest/api/token", nil)
	if err != nil {
		return "", fmt.Errorf("metadata service: building token request: %w", err)
	}
	req.Header.Set(metadataTTLHeader, fmt.Sprint(int(metadataTokenTTL/time.Second)))
	body, err := m.do(req)
	if err != nil {
		return "", fmt.Errorf("metadata service: getting an IMDSv2 token: %w", err)
	}
	m.token = strings.TrimSpace(body)
	m.tokenExpiry = m.now().Add(metadataTokenTTL)
	return m.token, nil
}

// get reads one metadata path, e.g. "meta-data/region-id". A rejected
// session token (the metadata service restarted, or the token expired
// early) is replaced once.
func (m *metadataClient) get(ctx context.Context, path string) (string, error) {
	v, err := m.getOnce(ctx, path)
	if errors.Is(err, errMetadataUnauthorized) {
		m.mu.Lock()
		m.token = ""
		m.mu.Unlock()
		v, err = m.getOnce(ctx, path)
	}
	return v, err
}

func (m *metadataClient) getOnce(ctx context.Context, path string) (string, error) {
	token, err := m.sessionToken(ctx)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.endpoint+"/latest/"+path, nil)
	if err != nil {
		return "", fmt.Errorf("metadata service: building request for %s: %w", path, err)
	}
	req.Header.Set(metadataTokenHeader, token)
	body, err := m.do(req)
	if err != nil {
		return "", fmt.Errorf("metadata service: reading %s: %w", path, err)
	}
	value := strings.TrimSpace(body)
	if value == "" {
		return "", fmt.Errorf("metadata service: %s is empty", path)
	}
	return value, nil
}

var errMetadataUnauthorized = errors.New("token rejected")

// do sends a request and returns the body. Errors never quote the body (it
// may hold credentials) nor the token.
func (m *metadataClient) do(req *http.Request) (string, error) {
	resp, err := m.http.Do(req)
	if err != nil {
		var detail string
		if ctxErr := req.Context().Err(); ctxErr != nil {
			detail = ctxErr.Error()
		} else {
			detail = "request failed"
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				detail = "timed out"
			}
		}
		return "", fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, detail)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, metadataMaxBody))
	if err != nil {
		return "", fmt.Errorf("%s %s: reading response: %w", req.Method, req.URL.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("%s %s: HTTP %d: %w", req.Method, req.URL.Path, resp.StatusCode, errMetadataUnauthorized)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("%s %s: HTTP %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return string(body), nil
}

// RegionID returns the region of the instance the process runs on.
func (m *metadataClient) RegionID(ctx context.Context) (string, error) {
	return m.get(ctx, "meta-data/region-id")
}

// VPCID returns the VPC of the instance the process runs on.
func (m *metadataClient) VPCID(ctx context.Context) (string, error) {
	return m.get(ctx, "meta-data/vpc-id")
}

// RAMRole returns the name of the RAM role attached to the instance.
func (m *metadataClient) RAMRole(ctx context.Context) (string, error) {
	roles, err := m.get(ctx, "meta-data/ram/security-credentials/")
	if err != nil {
		return "", err
	}
	names := strings.Fields(roles)
	switch len(names) {
	case 0:
		return "", errors.New("metadata service: no RAM role is attached to the instance")
	case 1:
		return names[0], nil
	default:
		return "", fmt.Errorf("metadata service: %d RAM roles are listed; choose one with --ram-role", len(names))
	}
}

// roleCredentials is the metadata service's answer for a RAM role.
type roleCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
	SecurityToken   string `json:"SecurityToken"`
	Expiration      string `json:"Expiration"`
	Code            string `json:"Code"`
}

// RoleCredentials returns the temporary credentials of a RAM role.
func (m *metadataClient) RoleCredentials(ctx context.Context, role string) (roleCredentials, error) {
	body, err := m.get(ctx, "meta-data/ram/security-credentials/"+role)
	if err != nil {
		return roleCredentials{}, err
	}
	var rc roleCredentials
	if err := json.Unmarshal([]byte(body), &rc); err != nil {
		return roleCredentials{}, fmt.Errorf("metadata service: credentials of RAM role %s are not valid JSON", role)
	}
	if rc.Code != "" && rc.Code != "Success" {
		return roleCredentials{}, fmt.Errorf("metadata service: credentials of RAM role %s: code %s", role, rc.Code)
	}
	if rc.AccessKeyID == "" || rc.AccessKeySecret == "" || rc.SecurityToken == "" {
		return roleCredentials{}, fmt.Errorf("metadata service: credentials of RAM role %s are incomplete", role)
	}
	return rc, nil
}
