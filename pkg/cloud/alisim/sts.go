package alisim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

const (
	minSessionSeconds     = 900
	defaultSessionSeconds = 3600
)

// TemporaryCredentials are STS credentials: a temporary access key that is
// valid only together with its SecurityToken and before Expiration.
type TemporaryCredentials struct {
	AccessKeyID     string    `json:"accessKeyId"`
	AccessKeySecret string    `json:"accessKeySecret"`
	SecurityToken   string    `json:"securityToken"`
	Expiration      time.Time `json:"expiration"`
}

func randomString(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// issueLocked creates a temporary key carrying the role's permissions.
func (s *Simulator) issueLocked(role *Role, d time.Duration) TemporaryCredentials {
	now := s.clock.Now()
	c := &credential{
		AccessKey: AccessKey{ID: "STS." + randomString(24), Secret: randomString(30), AllowedActions: append([]string(nil), role.AllowedActions...), Policy: role.Policy.clone()},
		token:     "CAIS" + randomString(96),
		expires:   now.Add(d).Truncate(time.Second),
	}
	for id, k := range s.st.keys { // forget long-expired temporary keys
		if k.temporary() && now.Sub(k.expires) > 24*time.Hour {
			delete(s.st.keys, id)
		}
	}
	s.st.keys[c.ID] = c
	return TemporaryCredentials{AccessKeyID: c.ID, AccessKeySecret: c.Secret, SecurityToken: c.token, Expiration: c.expires}
}

// AssumeRole issues temporary credentials for a role of the state, as STS
// would after a successful AssumeRoleWithOIDC, for tests that need an STS
// key without going through OIDC.
func (s *Simulator) AssumeRole(roleARN string, d time.Duration) (TemporaryCredentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.roles[roleARN]
	if !ok {
		return TemporaryCredentials{}, fmt.Errorf("role %s: %w", roleARN, ErrNotFound)
	}
	return s.issueLocked(r, d), nil
}

// RegisterOIDCToken makes token acceptable to AssumeRoleWithOIDC with the
// given provider, whatever its format (an opaque test token).
func (s *Simulator) RegisterOIDCToken(token, providerARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidcTokens[token] = providerARN
}

// oidcClaims are the JWT claims the simulator checks.
type oidcClaims struct {
	Issuer   string     `json:"iss"`
	Subject  string     `json:"sub"`
	Audience stringList `json:"aud"` // a string or an array of strings
	Expiry   int64      `json:"exp"`
	IssuedAt int64      `json:"iat"`
}

func parseJWTClaims(tok string) (oidcClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return oidcClaims{}, fmt.Errorf("not a JWT: %d segments", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return oidcClaims{}, fmt.Errorf("decoding JWT payload: %w", err)
	}
	var cl oidcClaims
	if err := json.Unmarshal(raw, &cl); err != nil {
		return oidcClaims{}, fmt.Errorf("decoding JWT claims: %w", err)
	}
	return cl, nil
}

func (s *Simulator) assumeRoleWithOIDC(c *call) (any, *apiError) {
	for _, name := range []string{"RoleArn", "OIDCProviderArn", "OIDCToken", "RoleSessionName"} {
		if c.get(name) == "" {
			return nil, errorf(CodeMissingParameter, "%s is mandatory for this action.", name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	role, ok := s.st.roles[c.get("RoleArn")]
	if !ok {
		return nil, errorf(CodeRoleNotExist, "The role does not exist.")
	}
	prov, ok := s.st.providers[c.get("OIDCProviderArn")]
	if !ok {
		return nil, errorf(CodeOIDCProviderNotExist, "The OIDC provider does not exist.")
	}
	trusted := false
	for _, p := range role.TrustedProviders {
		trusted = trusted || p == prov.ARN
	}
	if !trusted {
		return nil, errorf(CodeRoleNotTrusted, "The role does not trust the OIDC provider.")
	}
	maxSeconds := role.MaxSessionSeconds
	if maxSeconds == 0 {
		maxSeconds = defaultSessionSeconds
	}
	seconds, aerr := parseInt(c, "DurationSeconds", defaultSessionSeconds, minSessionSeconds, max(maxSeconds, minSessionSeconds))
	if aerr != nil {
		aerr.Code = CodeInvalidDuration
		return nil, aerr
	}
	seconds = min(seconds, maxSeconds)
	tok := c.get("OIDCToken")
	cl := oidcClaims{Issuer: prov.IssuerURL, Subject: "registered-token", Audience: stringList(prov.ClientIDs)}
	if p, ok := s.oidcTokens[tok]; !ok || p != prov.ARN {
		var err error
		if cl, err = parseJWTClaims(tok); err != nil {
			return nil, errorf(CodeOIDCTokenInvalid, "The OIDC token is malformed.")
		}
		if cl.Issuer != prov.IssuerURL {
			return nil, errorf(CodeOIDCIssuerMismatch, "The issuer of the OIDC token does not match the provider.")
		}
		match := false
		for _, a := range cl.Audience {
			for _, id := range prov.ClientIDs {
				match = match || a == id
			}
		}
		if !match {
			return nil, errorf(CodeOIDCAudienceMismatch, "The audience of the OIDC token is not a client ID of the provider.")
		}
		if cl.Expiry == 0 || !c.now.Before(time.Unix(cl.Expiry, 0)) {
			return nil, errorf(CodeOIDCTokenExpired, "The OIDC token is expired.")
		}
	}
	creds := s.issueLocked(role, time.Duration(seconds)*time.Second)
	session := c.get("RoleSessionName")
	type credJSON struct {
		AccessKeyID     string `json:"AccessKeyId"`
		AccessKeySecret string `json:"AccessKeySecret"`
		SecurityToken   string `json:"SecurityToken"`
		Expiration      string `json:"Expiration"`
	}
	out := struct {
		Credentials     credJSON `json:"Credentials"`
		AssumedRoleUser struct {
			Arn           string `json:"Arn"`
			AssumedRoleID string `json:"AssumedRoleId"`
		} `json:"AssumedRoleUser"`
		OIDCTokenInfo struct {
			Subject        string `json:"Subject"`
			Issuer         string `json:"Issuer"`
			ClientIDs      string `json:"ClientIds"`
			ExpirationTime string `json:"ExpirationTime"`
			IssuanceTime   string `json:"IssuanceTime"`
		} `json:"OIDCTokenInfo"`
	}{Credentials: credJSON{AccessKeyID: creds.AccessKeyID, AccessKeySecret: creds.AccessKeySecret, SecurityToken: creds.SecurityToken,
		Expiration: creds.Expiration.UTC().Format(timeLayout)}}
	out.AssumedRoleUser.Arn = strings.Replace(role.ARN, ":role/", ":assumed-role/", 1) + "/" + session
	out.AssumedRoleUser.AssumedRoleID = "3" + randomString(17) + ":" + session
	out.OIDCTokenInfo.Subject, out.OIDCTokenInfo.Issuer = cl.Subject, cl.Issuer
	out.OIDCTokenInfo.ClientIDs = strings.Join(cl.Audience, ",")
	if cl.Expiry != 0 {
		out.OIDCTokenInfo.ExpirationTime = time.Unix(cl.Expiry, 0).UTC().Format(timeLayout)
	}
	if cl.IssuedAt != 0 {
		out.OIDCTokenInfo.IssuanceTime = time.Unix(cl.IssuedAt, 0).UTC().Format(timeLayout)
	}
	return out, nil
}
