package alisim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Policy is a RAM policy document in the JSON shape Alibaba Cloud uses and
// deploy/ram-policy.json ships: a Version and a list of statements, each an
// Effect (Allow or Deny), a list of actions ("vpc:CreateRouteEntries",
// "vpc:Describe*", "*") and a list of resources ("*" or ARNs such as
// "acs:vpc:cn-chengdu:1000000000000001:routetable/vtb-..."). Action and
// Resource may be a single string or an array, as in RAM.
//
// Only what a route controller's policy needs is modelled: Condition,
// NotAction, NotResource and Principal are refused when a policy is loaded
// rather than silently ignored, so that no test believes they are enforced.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Policy.
type Statement struct {
	Effect   string     `json:"Effect"`
	Action   stringList `json:"Action"`
	Resource stringList `json:"Resource"`
}

// Effects of a Statement.
const (
	EffectAllow = "Allow"
	EffectDeny  = "Deny"
)

// stringList is a JSON string or array of strings (RAM's Action and
// Resource, a JWT's aud).
type stringList []string

// UnmarshalJSON accepts both forms.
func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("neither a string nor an array of strings: %w", err)
	}
	*l = many
	return nil
}

// ParsePolicy decodes and validates a RAM policy document. Unknown elements
// (Condition, NotAction, ...) are errors: the simulator does not enforce
// them.
func ParsePolicy(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding RAM policy: %w: %w", ErrInvalid, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks what RAM checks when a policy is created: Version 1, at
// least one statement, each with a known Effect, actions of the form
// "product:Action" (wildcards allowed) or "*", and resources.
func (p *Policy) Validate() error {
	if p.Version != "1" {
		return fmt.Errorf("RAM policy: Version must be \"1\", not %q: %w", p.Version, ErrInvalid)
	}
	if len(p.Statement) == 0 {
		return fmt.Errorf("RAM policy: no Statement: %w", ErrInvalid)
	}
	for i, st := range p.Statement {
		if st.Effect != EffectAllow && st.Effect != EffectDeny {
			return fmt.Errorf("RAM policy: statement %d: Effect must be Allow or Deny, not %q: %w", i, st.Effect, ErrInvalid)
		}
		if len(st.Action) == 0 || len(st.Resource) == 0 {
			return fmt.Errorf("RAM policy: statement %d: Action and Resource are required: %w", i, ErrInvalid)
		}
		for _, a := range st.Action {
			if a != "*" && !strings.Contains(a, ":") {
				return fmt.Errorf("RAM policy: statement %d: action %q is not product:Action: %w", i, a, ErrInvalid)
			}
		}
		for _, r := range st.Resource {
			if r == "" {
				return fmt.Errorf("RAM policy: statement %d: empty resource: %w", i, ErrInvalid)
			}
		}
	}
	return nil
}

// clone returns a deep copy (nil stays nil).
func (p *Policy) clone() *Policy {
	if p == nil {
		return nil
	}
	out := &Policy{Version: p.Version, Statement: make([]Statement, len(p.Statement))}
	for i, st := range p.Statement {
		out.Statement[i] = Statement{Effect: st.Effect, Action: slices.Clone(st.Action), Resource: slices.Clone(st.Resource)}
	}
	return out
}

// Verdicts of a policy evaluation. An implicit deny (no statement allows)
// and an explicit one (a Deny statement matches) are both refusals; the
// AccessDeniedDetail of the answer tells them apart, as RAM's does.
const (
	verdictAllow        = "Allow"
	verdictImplicitDeny = "ImplicitDeny"
	verdictExplicitDeny = "ExplicitDeny"
)

// evaluate decides whether the policy grants action ("product:Action") on
// every one of resources. A matching Deny wins over any Allow. With no
// resources (the call names none the simulator can resolve, e.g. an entry
// ID that does not exist) only the action is matched, whatever the
// statements' resources.
func (p *Policy) evaluate(action string, resources []string) string {
	if len(resources) == 0 {
		resources = []string{""}
	}
	for _, r := range resources {
		allowed := false
		for _, st := range p.Statement {
			if !st.matchesAction(action) || (r != "" && !st.matchesResource(r)) {
				continue
			}
			if st.Effect == EffectDeny {
				return verdictExplicitDeny
			}
			allowed = true
		}
		if !allowed {
			return verdictImplicitDeny
		}
	}
	return verdictAllow
}

// matchesAction matches "product:Action" against the statement's patterns;
// RAM compares action names without regard to case.
func (st Statement) matchesAction(action string) bool {
	for _, pat := range st.Action {
		if globMatch(strings.ToLower(pat), strings.ToLower(action)) {
			return true
		}
	}
	return false
}

// matchesResource matches an ARN (or "*", the resource of actions that
// cannot be granted per resource) against the statement's patterns.
func (st Statement) matchesResource(resource string) bool {
	for _, pat := range st.Resource {
		if globMatch(pat, resource) {
			return true
		}
	}
	return false
}

// globMatch reports whether s matches pattern, where "*" stands for any
// sequence of characters (including ":" and "/") and "?" for one.
func globMatch(pattern, s string) bool {
	// Iterative matching with backtracking to the last star: linear in
	// practice and free of recursion on hostile patterns.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// dryRunActions are the actions whose SDK request (alibaba-cloud-sdk-go
// v1.63.107, services/ecs and services/vpc) carries a DryRun parameter.
// Other actions know no DryRun: the real API ignores the parameter, and so
// does the simulator.
var dryRunActions = map[string]bool{
	"ecs:DescribeInstances": true,
	"vpc:DescribeVpcs":      true,
	"vpc:DescribeVSwitches": true,
}

// Denial shapes of ECS Describe actions (Options.ECSDescribeDenial).
const (
	// ECSDenialEmptyList: HTTP 200 with an empty list, as documented on
	// the DescribeInstances page and as ECS answered until its 2025-12-20
	// change of the authentication of query actions.
	ECSDenialEmptyList = "empty-list"
	// ECSDenialForbidden: HTTP 403 Forbidden.RAM with an
	// AccessDeniedDetail, as announced for ECS query actions from
	// 2025-12-20.
	ECSDenialForbidden = "forbidden"
)

// Codes of refusals by RAM.
const (
	CodeDryRunOperation = "DryRunOperation"
	// CodeForbbiden is the denial code (sic) of the VPC API reference's
	// error tables (e.g. DescribeRouteTableList: 403 Forbbiden "User not
	// authorized to operate on the specified resource.").
	CodeForbbiden = "Forbbiden"
)

// authorize applies the access key's RAM policy to the call. It returns an
// error to answer instead of running the action, or nil; for an ECS
// Describe action refused in the empty-list shape it marks the call denied
// and lets the action answer an empty list. A DryRun call of an action that
// accepts DryRun ends here: DryRunOperation when allowed, Forbidden.RAM
// when not.
func (s *Simulator) authorize(c *call) *apiError {
	perm := c.product + ":" + c.action
	dryRun := dryRunActions[perm] && strings.EqualFold(c.get("DryRun"), "true")
	if c.cred.Policy == nil {
		if dryRun {
			return errorf(CodeDryRunOperation, "")
		}
		return nil
	}
	s.mu.Lock()
	resources := s.resourcesLocked(c)
	s.mu.Unlock()
	verdict := c.cred.Policy.evaluate(perm, resources)
	switch {
	case verdict == verdictAllow && dryRun:
		return errorf(CodeDryRunOperation, "")
	case verdict == verdictAllow:
		return nil
	case dryRun:
		return s.denied(c, CodeForbiddenRAM, perm, verdict)
	// Every ECS Describe handler honours c.denied (DescribeInstances,
	// DescribeNetworkInterfaces): the empty-list shape is the ECS query
	// actions' shape, not one action's.
	case c.product == "ecs" && s.opts.ECSDescribeDenial == ECSDenialEmptyList && strings.HasPrefix(c.action, "Describe"):
		c.denied = true
		return nil
	case c.product == "vpc":
		return s.denied(c, s.opts.VPCDenialCode, perm, verdict)
	default:
		return s.denied(c, CodeForbiddenRAM, perm, verdict)
	}
}

// denied builds a 403 refusal with the AccessDeniedDetail RAM adds to it
// (the SDK exposes it as ServerError.AccessDeniedDetail()).
func (s *Simulator) denied(c *call, code, perm, verdict string) *apiError {
	e := errorf(code, "")
	if e.Message == code {
		e.Message = defaultMessage[CodeForbbiden]
	}
	e.Status = 403
	principal := "SubUser"
	if c.cred.temporary() {
		principal = "AssumedRoleUser"
	}
	e.AccessDeniedDetail = map[string]string{
		"AuthAction":               perm,
		"AuthPrincipalType":        principal,
		"AuthPrincipalDisplayName": c.cred.ID,
		"NoPermissionType":         verdict,
		"PolicyType":               "AccountLevelIdentityBasedPolicy",
	}
	return e
}

// resourcesLocked returns the ARNs a call acts on, as RAM's authorization
// tables name them: the ENI (acs:ecs:<region>:<account>:networkinterface/<id>)
// and security groups of ModifyNetworkInterfaceAttribute; the route table
// (acs:vpc:<region>:<account>:routetable/<id>) of route entry actions,
// resolved from RouteEntryId where the call names an entry. Actions that
// cannot be granted per resource act on "*". An entry that does not exist
// names no resource.
func (s *Simulator) resourcesLocked(c *call) []string {
	if c.product == "ecs" && c.action == "ModifyNetworkInterfaceAttribute" {
		// The ECS reference grants it on the ENI and, when the call names
		// them, its security groups.
		prefix := "acs:ecs:" + s.st.region + ":" + s.st.account + ":"
		out := []string{prefix + "networkinterface/" + c.get("NetworkInterfaceId")}
		for name, vs := range c.params {
			if strings.HasPrefix(name, "SecurityGroupId.") && len(vs) > 0 {
				out = append(out, prefix+"securitygroup/"+vs[0])
			}
		}
		slices.Sort(out)
		return out
	}
	if c.product != "vpc" {
		return []string{"*"}
	}
	arn := func(table string) string {
		return "acs:vpc:" + s.st.region + ":" + s.st.account + ":routetable/" + table
	}
	var out []string
	add := func(table, entryID string) {
		if table == "" && entryID != "" {
			if e, ok := s.st.entries[entryID]; ok {
				table = e.TableID
			}
		}
		if table != "" && !slices.Contains(out, arn(table)) {
			out = append(out, arn(table))
		}
	}
	switch c.action {
	case "DescribeRouteEntryList", "CreateRouteEntry", "DeleteRouteEntry", "ModifyRouteEntry":
		add(c.get("RouteTableId"), c.get("RouteEntryId"))
	case "CreateRouteEntries", "DeleteRouteEntries":
		for name, vs := range c.params {
			if !strings.HasPrefix(name, "RouteEntries.") || len(vs) == 0 {
				continue
			}
			switch {
			case strings.HasSuffix(name, ".RouteTableId"):
				add(vs[0], "")
			case strings.HasSuffix(name, ".RouteEntryId"):
				add("", vs[0])
			}
		}
		slices.Sort(out)
	default:
		return []string{"*"}
	}
	return out
}

// SetAccessKeyPolicy attaches a RAM policy to a permanent access key, or
// detaches it with nil (the key may then call every action its
// AllowedActions permit). Temporary keys already issued keep the policy
// they were issued with.
func (s *Simulator) SetAccessKeyPolicy(id string, p *Policy) error {
	if p != nil {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.st.keys[id]
	if !ok || k.temporary() {
		return fmt.Errorf("access key: %w", ErrNotFound)
	}
	k.Policy = p.clone()
	return nil
}

// SetRolePolicy attaches a RAM policy to a role (nil detaches it). STS
// credentials issued for the role afterwards carry it.
func (s *Simulator) SetRolePolicy(roleARN string, p *Policy) error {
	if p != nil {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.st.roles[roleARN]
	if !ok {
		return fmt.Errorf("role %s: %w", roleARN, ErrNotFound)
	}
	r.Policy = p.clone()
	return nil
}
