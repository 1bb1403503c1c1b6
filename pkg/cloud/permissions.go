package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// ErrPermissionDenied is the class of calls the credentials' RAM policy
// refuses (Forbidden.RAM, Forbbiden, NoPermission, ...). It wraps
// route.ErrUnauthorized, so every caller that stops on a credential problem
// stops on it too; Permissions tells it apart from a rejected key.
var ErrPermissionDenied = fmt.Errorf("RAM permission denied: %w", route.ErrUnauthorized)

// permissionDeniedCodes are the codes of a RAM refusal: the OpenAPI
// gateway's Forbidden.RAM, the VPC reference's Forbbiden (sic) and the
// NoPermission family of newer products.
var permissionDeniedCodes = map[string]bool{
	"Forbidden.RAM":          true,
	"Forbbiden":              true,
	"Forbidden":              true,
	"Forbbiden.SubUser":      true,
	"Forbidden.SubUser":      true,
	"NoPermission":           true,
	"Forbidden.NoPermission": true,
	"ForbiddenByRam":         true,
}

// codeDryRunOperation answers a DryRun call that passed every check,
// permissions included.
const codeDryRunOperation = "DryRunOperation"

// permissionProbe is one RAM action the publisher needs and the harmless
// call that proves it is granted. The list is data (permissionProbes): an
// action the code starts calling gets a probe there, and deploy/
// ram-policy.json is checked against the list.
type permissionProbe struct {
	// Action is the RAM action, product:Action.
	Action string
	// Needed reports whether the configuration calls the action; nil means
	// always.
	Needed func(probeConfig) bool
	// DryRun marks probes made with DryRun=true: only DryRunOperation
	// proves the permission (a 200 could be ECS's empty answer to a key
	// without it).
	DryRun bool
	// Call makes the probe call and returns its error (nil on success).
	Call func(ctx context.Context, env probeEnv) error
}

// probeConfig is what decides which actions are needed.
type probeConfig struct {
	// adopt is --adopt-unmarked, the only user of ModifyRouteEntry.
	adopt bool
	// sourceDestCheck is --source-dest-check: disable reads and writes
	// ENIs, report only reads them, ignore neither.
	sourceDestCheck string
}

// probeEnv is what a probe calls with.
type probeEnv struct {
	vpcID  string
	vpc    vpcAPI
	ecs    ecsAPI
	eni    eniAPI
	inv    *invoker
	tables func(ctx context.Context) ([]route.TableInfo, error)
}

// Permission states.
const (
	permUnknown = iota // no conclusive probe yet
	permGranted
	permMissing
)

type permissionState struct {
	state int
	// err is the refusal (missing) or the last inconclusive failure.
	err error
	at  time.Time
}

// Permissions proves, action by action, that the credentials' RAM policy
// grants what the publisher calls. ECS answers a key without
// ecs:DescribeInstances with HTTP 200 and an empty list, which reads like
// "every instance released": only a proof of the permission makes an
// instance's absence evidence of its release (Instances.Status), and a
// missing action keeps the replica unready, named in /readyz, in the
// vpc_route_publisher_permission_missing gauge and in the log.
type Permissions struct {
	probes  []permissionProbe
	env     probeEnv
	metrics *metrics
	now     func() time.Time

	mu     sync.Mutex
	states map[string]permissionState
}

func newPermissions(probes []permissionProbe, cfg probeConfig, env probeEnv, m *metrics, now func() time.Time) *Permissions {
	p := &Permissions{env: env, metrics: m, now: now, states: map[string]permissionState{}}
	for _, pr := range probes {
		if pr.Needed == nil || pr.Needed(cfg) {
			p.probes = append(p.probes, pr)
			p.states[pr.Action] = permissionState{err: errors.New("not probed yet")}
			m.permissionMissing.WithLabelValues(pr.Action).Set(0)
		}
	}
	return p
}

// RAMActions returns every RAM action the publisher may call, sorted: the
// actions of its permission probes, whatever the configuration needs of
// them. The shipped RAM policies (deploy/ram-policy.json and its scoped
// variant) grant exactly these, and the tests that take permissions away
// take them from here.
func RAMActions() []string {
	out := make([]string, 0, len(permissionProbes))
	for _, pr := range permissionProbes {
		out = append(out, pr.Action)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Actions returns the RAM actions the configuration needs, sorted.
func (p *Permissions) Actions() []string {
	out := make([]string, 0, len(p.probes))
	for _, pr := range p.probes {
		out = append(out, pr.Action)
	}
	slices.Sort(out)
	return out
}

// Probe runs every probe once. Inconclusive probes (network, throttling,
// a rejected key) keep the action's previous state.
func (p *Permissions) Probe(ctx context.Context) {
	for _, pr := range p.probes {
		if ctx.Err() != nil {
			return
		}
		p.record(ctx, pr.Action, probeOutcome(pr.Call(ctx, p.env), pr.DryRun))
	}
}

// Run probes at once, then every interval until ctx ends. A missing
// action is reported (readiness, metric, log), never fatal: the operator
// fixes the policy and the next probe sees it.
// While an action is not proven either way (the cloud unreachable or
// throttling), the next round comes after at most unprovenRetry.
func (p *Permissions) Run(ctx context.Context, interval time.Duration) {
	for {
		p.Probe(ctx)
		next := interval
		if p.undecided() {
			next = min(interval, unprovenRetry)
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// unprovenRetry bounds the wait before probing again while an action is
// undecided, so that a flaky first round does not keep a replica unready
// for a whole interval.
const unprovenRetry = 5 * time.Second

// undecided reports whether some action has no conclusive probe yet.
func (p *Permissions) undecided() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.states {
		if st.state == permUnknown {
			return true
		}
	}
	return false
}

// confirm probes action now and reports whether every needed action is
// proven granted. Instances.Status calls it before it takes an instance's
// absence as evidence.
func (p *Permissions) confirm(ctx context.Context, action string) bool {
	for _, pr := range p.probes {
		if pr.Action == action {
			p.record(ctx, pr.Action, probeOutcome(pr.Call(ctx, p.env), pr.DryRun))
		}
	}
	return p.Proven()
}

// Proven reports whether the latest conclusive probe of every needed action
// found it granted.
func (p *Permissions) Proven() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range p.states {
		if st.state != permGranted {
			return false
		}
	}
	return true
}

// Missing returns the actions found missing, sorted.
func (p *Permissions) Missing() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for a, st := range p.states {
		if st.state == permMissing {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Check is the readiness check: nil once every needed action is proven
// granted, else one sentence per action naming what to grant.
func (p *Permissions) Check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var missing, unknown []string
	for _, a := range sortedStateKeys(p.states) {
		switch st := p.states[a]; st.state {
		case permMissing:
			missing = append(missing, fmt.Sprintf("grant the RAM action %s to the publisher's credentials (see deploy/ram-policy.json)", a))
		case permUnknown:
			unknown = append(unknown, fmt.Sprintf("the RAM action %s is not proven yet (%v)", a, st.err))
		}
	}
	if len(missing)+len(unknown) == 0 {
		return nil
	}
	msg := strings.Join(append(missing, unknown...), "; ")
	if len(missing) > 0 {
		msg += "; until then no route is deleted because its instance looks released"
	}
	return errors.New(msg)
}

// observe records the outcome of a regular call: a RAM refusal marks its
// action missing at once, without waiting for the next probe. Successes
// prove nothing (an ECS Describe refused answers 200).
func (p *Permissions) observe(ctx context.Context, apiAction string, err error) {
	if !errors.Is(err, ErrPermissionDenied) {
		return
	}
	for _, pr := range p.probes {
		if _, name, _ := strings.Cut(pr.Action, ":"); name == apiAction {
			p.record(ctx, pr.Action, permissionState{state: permMissing, err: err})
		}
	}
}

// record stores an outcome, updates the gauge and logs every change of a
// conclusive state.
func (p *Permissions) record(ctx context.Context, action string, st permissionState) {
	logger := klog.FromContext(ctx)
	p.mu.Lock()
	prev := p.states[action]
	if st.state == permUnknown {
		// Inconclusive: keep what is known, remember why.
		prev.err = st.err
		p.states[action] = prev
		p.mu.Unlock()
		logger.V(2).Info("Permission probe inconclusive", "action", action, "err", st.err)
		return
	}
	st.at = p.now()
	p.states[action] = st
	p.mu.Unlock()
	missing := 0.0
	if st.state == permMissing {
		missing = 1
	}
	p.metrics.permissionMissing.WithLabelValues(action).Set(missing)
	switch {
	case st.state == permMissing && prev.state != permMissing:
		logger.Error(st.err, "RAM permission missing: grant it to the publisher's credentials; deletions of routes whose instance looks released are blocked meanwhile", "action", action)
	case st.state == permGranted && prev.state == permMissing:
		logger.Info("RAM permission granted again", "action", action)
	case st.state == permGranted && prev.state == permUnknown:
		logger.V(2).Info("RAM permission proven", "action", action)
	}
}

// DeniedAction returns the RAM action (product:Action) a call refused by
// RAM needed, or "" when err is no such refusal or its action is not one
// the publisher calls.
func DeniedAction(err error) string {
	var apiErr *APIError
	if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &apiErr) {
		return ""
	}
	for _, pr := range permissionProbes {
		if _, name, _ := strings.Cut(pr.Action, ":"); name == apiErr.Action {
			return pr.Action
		}
	}
	return ""
}

// probeOutcome reads a probe's answer. A RAM refusal proves the action
// missing. For a DryRun probe only DryRunOperation proves it granted. For
// any other probe every answer the service gives after authorization
// (success, invalid parameter, not found, busy) proves it granted; network
// failures, throttling, 5xx and rejected keys prove nothing.
func probeOutcome(err error, dryRun bool) permissionState {
	var apiErr *APIError
	errors.As(err, &apiErr)
	switch {
	case err == nil && dryRun:
		return permissionState{state: permUnknown, err: errors.New("the dry run was answered like a real call")}
	case err == nil:
		return permissionState{state: permGranted}
	case errors.Is(err, ErrPermissionDenied):
		return permissionState{state: permMissing, err: err}
	case apiErr != nil && apiErr.Code == codeDryRunOperation:
		return permissionState{state: permGranted}
	case dryRun, errors.Is(err, route.ErrUnauthorized), errors.Is(err, route.ErrThrottled), errors.Is(err, ErrNetwork),
		apiErr == nil, apiErr.HTTPStatus >= http.StatusInternalServerError, apiErr.HTTPStatus == 0 && !apiErr.entry:
		return permissionState{state: permUnknown, err: err}
	}
	return permissionState{state: permGranted}
}

func sortedStateKeys(m map[string]permissionState) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
