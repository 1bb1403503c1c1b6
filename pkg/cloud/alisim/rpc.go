package alisim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// API versions of the products the simulator serves.
const (
	VersionVPC = "2016-04-28"
	VersionECS = "2014-05-26"
	VersionSTS = "2015-04-01"
)

// timeLayout is the ISO 8601 UTC form the API uses for Timestamp, Expiration
// and GmtModified.
const timeLayout = "2006-01-02T15:04:05Z"

// maxBodyBytes bounds a request body; the largest legitimate request (50
// batch entries) is a few kilobytes.
const maxBodyBytes = 1 << 20

// call is one API request being served.
type call struct {
	product   string // vpc, ecs or sts
	action    string
	requestID string
	params    url.Values
	cred      *credential // nil for anonymous actions
	now       time.Time
	// denied marks a call the key's RAM policy refuses in the shape of an
	// empty answer (ECS Describe actions, see Options.ECSDescribeDenial).
	denied bool
}

func (c *call) get(name string) string { return c.params.Get(name) }

func (c *call) has(name string) bool { return c.params.Has(name) && c.params.Get(name) != "" }

// handlerFunc serves one action; it returns the response body (without
// RequestId, which the caller adds) or an error.
type handlerFunc func(s *Simulator, c *call) (any, *apiError)

type actionSpec struct {
	handler   handlerFunc
	anonymous bool // no signature (STS AssumeRoleWithOIDC)
}

// products maps Version → product name and its actions.
var products = map[string]struct {
	name    string
	actions map[string]actionSpec
}{
	VersionVPC: {name: "vpc", actions: map[string]actionSpec{
		"DescribeVpcs":           {handler: (*Simulator).describeVpcs},
		"DescribeVSwitches":      {handler: (*Simulator).describeVSwitches},
		"DescribeRouteTableList": {handler: (*Simulator).describeRouteTableList},
		"DescribeRouteEntryList": {handler: (*Simulator).describeRouteEntryList},
		"CreateRouteEntry":       {handler: (*Simulator).createRouteEntry},
		"CreateRouteEntries":     {handler: (*Simulator).createRouteEntries},
		"DeleteRouteEntry":       {handler: (*Simulator).deleteRouteEntry},
		"DeleteRouteEntries":     {handler: (*Simulator).deleteRouteEntries},
		"ModifyRouteEntry":       {handler: (*Simulator).modifyRouteEntry},
	}},
	VersionECS: {name: "ecs", actions: map[string]actionSpec{
		"DescribeInstances":               {handler: (*Simulator).describeInstances},
		"DescribeNetworkInterfaces":       {handler: (*Simulator).describeNetworkInterfaces},
		"ModifyNetworkInterfaceAttribute": {handler: (*Simulator).modifyNetworkInterfaceAttribute},
	}},
	VersionSTS: {name: "sts", actions: map[string]actionSpec{
		"AssumeRoleWithOIDC": {handler: (*Simulator).assumeRoleWithOIDC, anonymous: true},
	}},
}

// APIHandler returns the handler of the cloud API: VPC, ECS and STS RPC
// requests on one listener, dispatched by their Version and Action.
func (s *Simulator) APIHandler() http.Handler { return http.HandlerFunc(s.serveAPI) }

func (s *Simulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{requestID: newRequestID(), now: s.clock.Now()}
	resp, aerr := s.serveCall(w, r, c)
	code := "Success"
	if aerr != nil {
		code = aerr.Code
	}
	if c.action != "" {
		s.count(c.action, code)
	}
	if l := s.opts.Logger; l != nil {
		key := "none"
		if c.cred != nil {
			key = "permanent"
			if c.cred.temporary() {
				key = "temporary"
			}
		}
		l.Info("API call", "action", c.action, "code", code, "requestID", c.requestID, "accessKey", key, "duration", time.Since(start).Round(time.Microsecond))
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", c.requestID)
	if aerr != nil {
		w.WriteHeader(s.statusOf(aerr))
		body := map[string]any{
			"RequestId": c.requestID,
			"HostId":    r.Host,
			"Code":      aerr.Code,
			"Message":   aerr.Message,
			"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(aerr.Code) + "&product=" + c.product,
		}
		if aerr.AccessDeniedDetail != nil {
			body["AccessDeniedDetail"] = aerr.AccessDeniedDetail
		}
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	body, err := withRequestID(resp, c.requestID)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, `{"RequestId":%q,"Code":"InternalError","Message":"encoding the response failed"}`, c.requestID)
		return
	}
	_, _ = w.Write(body)
}

// serveCall authenticates, authorizes, throttles and runs one call.
func (s *Simulator) serveCall(w http.ResponseWriter, r *http.Request, c *call) (any, *apiError) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, &apiError{Code: "UnsupportedHTTPMethod", Message: "Only GET and POST are supported.", Status: http.StatusMethodNotAllowed}
	}
	params, err := requestParams(w, r)
	if err != nil {
		return nil, errorf(CodeInvalidParameter, "the request parameters cannot be parsed")
	}
	c.params = params
	c.action = params.Get("Action")
	version := params.Get("Version")
	if c.action == "" {
		return nil, errorf(CodeMissingParameter, "Action is mandatory for this action.")
	}
	if version == "" {
		return nil, errorf(CodeMissingParameter, "Version is mandatory for this action.")
	}
	prod, ok := products[version]
	if !ok {
		return nil, errorf(CodeInvalidVersion, "Specified parameter Version is not valid.")
	}
	c.product = prod.name
	spec, ok := prod.actions[c.action]
	if !ok {
		return nil, errorf(CodeInvalidAction, "")
	}
	if f := params.Get("Format"); f != "" && !strings.EqualFold(f, "JSON") {
		return nil, errorf(CodeUnsupportedFormat, "the simulator only answers Format=JSON")
	}
	if !spec.anonymous {
		cred, aerr := s.authenticate(r.Method, c)
		if aerr != nil {
			return nil, aerr
		}
		c.cred = cred
		if !allowed(cred.AllowedActions, c.product, c.action) {
			return nil, errorf(CodeForbiddenRAM, "")
		}
		if aerr := s.authorize(c); aerr != nil && aerr.Code != CodeDryRunOperation {
			return nil, aerr
		} else if aerr != nil {
			// A dry run passed authorization; it still counts against
			// throttles and meets injected faults like the real call.
			if ferr := s.admit(r, c); ferr != nil {
				return nil, ferr
			}
			return nil, aerr
		}
	}
	if aerr := s.admit(r, c); aerr != nil {
		return nil, aerr
	}
	return spec.handler(s, c)
}

// requestParams merges the query string and a form-encoded body.
func requestParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("parsing query: %w", err)
	}
	if r.Method == http.MethodPost && r.Body != nil {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		if len(body) > 0 {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, fmt.Errorf("parsing body: %w", err)
			}
			for k, vs := range form {
				if !params.Has(k) {
					params[k] = vs
				}
			}
		}
	}
	return params, nil
}

// authenticate checks the RPC signature (HMAC-SHA1, version 1.0), the
// timestamp window, nonce replay and, for temporary keys, the STS token.
func (s *Simulator) authenticate(method string, c *call) (*credential, *apiError) {
	p := c.params
	for _, name := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureNonce", "Timestamp"} {
		if p.Get(name) == "" {
			if name == "Signature" || name == "SignatureMethod" {
				return nil, errorf(CodeIncompleteSignature, "%s is missing.", name)
			}
			return nil, errorf(CodeMissingParameter, "%s is mandatory for this action.", name)
		}
	}
	if p.Get("SignatureMethod") != "HMAC-SHA1" || (p.Has("SignatureVersion") && p.Get("SignatureVersion") != "1.0") {
		return nil, errorf(CodeUnsupportedSignatureMeth, "only HMAC-SHA1 with SignatureVersion 1.0 is supported")
	}
	s.mu.Lock()
	cred, ok := s.st.keys[p.Get("AccessKeyId")]
	var snapshot credential
	if ok {
		snapshot = *cred
		snapshot.AllowedActions = slices.Clone(cred.AllowedActions)
		snapshot.Policy = cred.Policy.clone()
	}
	s.mu.Unlock()
	if !ok {
		return nil, errorf(CodeInvalidAccessKeyNotFound, "")
	}
	if snapshot.Disabled {
		return nil, errorf(CodeInvalidAccessKeyInactive, "")
	}
	toSign := StringToSign(method, p)
	if !hmac.Equal([]byte(Sign(toSign, snapshot.Secret)), []byte(p.Get("Signature"))) {
		// The SDK compares this string with its own to tell a wrong secret
		// from a canonicalization bug, so it is sent as the real service does.
		return nil, &apiError{Code: CodeSignatureDoesNotMatch, Message: defaultMessage[CodeSignatureDoesNotMatch] + " server string to sign is:" + toSign}
	}
	ts, err := time.Parse(timeLayout, p.Get("Timestamp"))
	if err != nil {
		return nil, errorf(CodeInvalidTimeStampFormat, "")
	}
	ref := c.now
	if w, ok := s.clock.(interface{ Wall() time.Time }); ok {
		ref = w.Wall()
	}
	if d := ref.Sub(ts); d > s.opts.TimestampWindow || d < -s.opts.TimestampWindow {
		return nil, errorf(CodeInvalidTimeStampExpired, "")
	}
	if snapshot.temporary() {
		tok := p.Get("SecurityToken")
		switch {
		case tok == "":
			return nil, errorf(CodeMissingSecurityToken, "")
		case !hmac.Equal([]byte(tok), []byte(snapshot.token)):
			return nil, errorf(CodeSecurityTokenMismatch, "")
		case !c.now.Before(snapshot.expires):
			return nil, errorf(CodeSecurityTokenExpired, "")
		}
	} else if p.Get("SecurityToken") != "" {
		return nil, errorf(CodeSecurityTokenMismatch, "a permanent AccessKey takes no SecurityToken")
	}
	nonceKey := snapshot.ID + "/" + p.Get("SignatureNonce")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneNoncesLocked(c.now)
	if _, used := s.nonces[nonceKey]; used {
		return nil, errorf(CodeSignatureNonceUsed, "")
	}
	s.nonces[nonceKey] = c.now
	return &snapshot, nil
}

func (s *Simulator) pruneNoncesLocked(now time.Time) {
	if len(s.nonces) < 4096 {
		return
	}
	for k, t := range s.nonces {
		if now.Sub(t) > nonceRetention {
			delete(s.nonces, k)
		}
	}
}

// StringToSign returns the string the RPC signature (version 1.0) covers:
// METHOD&%2F&escape(canonicalized parameters), the parameters sorted by
// name, each name and value percent-encoded (RFC 3986: space as %20, * as
// %2A, ~ kept), Signature excluded. It is exported so tests and tools can
// sign raw requests.
func StringToSign(method string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(percentEncode(k))
		b.WriteByte('=')
		b.WriteString(percentEncode(params.Get(k)))
	}
	return method + "&%2F&" + url.QueryEscape(b.String())
}

var percentReplacer = strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~")

func percentEncode(s string) string { return percentReplacer.Replace(url.QueryEscape(s)) }

// Sign returns the base64 HMAC-SHA1 of stringToSign keyed with secret + "&".
func Sign(stringToSign, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// allowed reports whether a permission list grants product:action. An
// entry is "*", "Action" or "product:Action", where Action may end in "*"
// ("vpc:Describe*"), as in a RAM policy.
func allowed(perms []string, product, action string) bool {
	if len(perms) == 0 {
		return true
	}
	for _, p := range perms {
		if p == "*" {
			return true
		}
		prod, act := normalizeAction(p)
		if prod != "" && prod != product {
			continue
		}
		if act == action || (strings.HasSuffix(act, "*") && strings.HasPrefix(action, strings.TrimSuffix(act, "*"))) {
			return true
		}
	}
	return false
}

// withRequestID marshals resp, a struct, and puts the RequestId field first.
func withRequestID(resp any, requestID string) ([]byte, error) {
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	if len(raw) < 2 || raw[0] != '{' {
		return nil, fmt.Errorf("encoding response: %T is not a JSON object", resp)
	}
	id, _ := json.Marshal(requestID)
	out := make([]byte, 0, len(raw)+len(id)+16)
	out = append(out, `{"RequestId":`...)
	out = append(out, id...)
	if len(raw) > 2 {
		out = append(out, ',')
	}
	return append(out, raw[1:]...), nil
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := strings.ToUpper(fmt.Sprintf("%x", b[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
