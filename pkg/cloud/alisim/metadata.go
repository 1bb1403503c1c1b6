package alisim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metadata service headers (IMDSv2).
const (
	MetadataTokenHeader    = "X-aliyun-ecs-metadata-token"
	MetadataTokenTTLHeader = "X-aliyun-ecs-metadata-token-ttl-seconds"
	maxMetadataTokenTTL    = 21600
	metadataCredentialTTL  = 6 * time.Hour
	metadataCredentialMin  = time.Hour
)

// MetadataHandler returns the ECS instance metadata service of the
// instance Options.MetadataInstanceID: IMDSv2 session tokens
// (PUT /latest/api/token) and GET /latest/meta-data/... including the RAM
// role credentials the SDK's ECS RAM role provider reads.
func (s *Simulator) MetadataHandler() http.Handler { return http.HandlerFunc(s.serveMetadata) }

func (s *Simulator) serveMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	path := r.URL.Path
	if path == "/latest/api/token" {
		s.serveMetadataToken(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !s.metadataTokenValid(r.Header.Get(MetadataTokenHeader)) {
		http.Error(w, "unauthorized: a valid "+MetadataTokenHeader+" is required", http.StatusUnauthorized)
		return
	}
	rest, ok := strings.CutPrefix(path, "/latest/meta-data/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	in := s.metadataInstanceLocked()
	if in == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	vpc, vsw := s.st.vpcs[in.VPCID], s.st.vswitches[in.VSwitchID]
	values := map[string]string{
		"region-id":          s.st.region,
		"zone-id":            in.Zone,
		"instance-id":        in.ID,
		"hostname":           in.ID,
		"vpc-id":             in.VPCID,
		"vswitch-id":         in.VSwitchID,
		"private-ipv4":       in.PrivateIP.String(),
		"vpc-cidr-block":     vpc.CIDR.String(),
		"vswitch-cidr-block": vsw.CIDR.String(),
	}
	role := s.metadataRoleLocked()
	s.mu.Unlock()
	switch {
	case rest == "":
		keys := append(sortedKeys(values), "ram/")
		_, _ = w.Write([]byte(strings.Join(keys, "\n")))
	case values[rest] != "":
		_, _ = w.Write([]byte(values[rest]))
	case rest == "ram/security-credentials/" || rest == "ram/security-credentials":
		if role == nil {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(role.Name))
	case strings.HasPrefix(rest, "ram/security-credentials/"):
		name := strings.TrimPrefix(rest, "ram/security-credentials/")
		if role == nil || name != role.Name {
			http.NotFound(w, r)
			return
		}
		s.serveRoleCredentials(w, role)
	default:
		http.NotFound(w, r)
	}
}

func (s *Simulator) serveMetadataToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden: proxied token requests are refused", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(MetadataTokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxMetadataTokenTTL {
		http.Error(w, "bad request: "+MetadataTokenTTLHeader+" must be 1 to 21600", http.StatusBadRequest)
		return
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	now := s.clock.Now()
	for t, exp := range s.imdsTokens {
		if !now.Before(exp) {
			delete(s.imdsTokens, t)
		}
	}
	s.imdsTokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	_, _ = w.Write([]byte(tok))
}

func (s *Simulator) metadataTokenValid(tok string) bool {
	if tok == "" {
		return s.opts.AllowIMDSv1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.imdsTokens[tok]
	return ok && s.clock.Now().Before(exp)
}

func (s *Simulator) metadataInstanceLocked() *Instance {
	id := s.opts.MetadataInstanceID
	if id == "" {
		ids := sortedKeys(s.st.instances)
		if len(ids) == 0 {
			return nil
		}
		id = ids[0]
	}
	return s.st.instances[id]
}

func (s *Simulator) metadataRoleLocked() *Role {
	for _, r := range s.st.roles {
		if r.Name == s.opts.MetadataRoleName {
			return r
		}
	}
	return nil
}

func (s *Simulator) serveRoleCredentials(w http.ResponseWriter, role *Role) {
	s.mu.Lock()
	now := s.clock.Now()
	var creds TemporaryCredentials
	if c := s.imdsCreds; c != nil && c.role == role.ARN && c.creds.Expiration.Sub(now) > metadataCredentialMin {
		creds = c.creds
	} else {
		creds = s.issueLocked(role, metadataCredentialTTL)
		s.imdsCreds = &imdsCredentials{role: role.ARN, creds: creds, issued: now}
	}
	issued := s.imdsCreds.issued
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"AccessKeyId":     creds.AccessKeyID,
		"AccessKeySecret": creds.AccessKeySecret,
		"SecurityToken":   creds.SecurityToken,
		"Expiration":      creds.Expiration.UTC().Format(timeLayout),
		"LastUpdated":     issued.UTC().Format(timeLayout),
		"Code":            "Success",
	})
}

// imdsCredentials are the role credentials the metadata service hands out
// until they come close to expiry, as the real service rotates them.
type imdsCredentials struct {
	role   string
	creds  TemporaryCredentials
	issued time.Time
}
