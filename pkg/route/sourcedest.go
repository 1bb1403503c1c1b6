package route

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// The ENI source/destination check.
//
// A route entry with an Instance next hop delivers the pod CIDR's traffic to
// the instance's primary ENI. Since 2025-04-22 Alibaba turns that ENI's
// source/destination check on by default for new instances, and with the
// check on the ENI drops every packet whose source or destination is not
// one of its own IPs: every pod packet of a non-tunnel CNI. The route entry
// is then Available and carries nothing. Decisions:
//
//   - The check of every node's instance is read at the first pass and once
//     per resync period (so a check turned back on out of band is seen at
//     the next resync), batched by the cloud layer; passes in between read
//     only the checks never read or last read on. Audit reads them all.
//   - A route whose instance's ENI has the check on is not "published": its
//     state is source-dest-check instead of in-sync, the node gets a
//     SourceDestCheckOn problem (event, metric, audit line), and its
//     NetworkUnavailable condition is set True if we own it.
//   - A check that cannot be read keeps the last value read in this
//     process; one never read counts as on: publishing needs evidence.
//   - Mode disable (the default, what the Alibaba CCM's node controller
//     does) turns the check off and waits until it reads back off; report
//     only reports; ignore reads nothing (for clusters where another
//     component owns the ENIs, or credentials without ENI permissions).
//     Dry runs never write.

// SourceDestCheckMode is what the controller does about the check.
type SourceDestCheckMode string

// Modes of --source-dest-check.
const (
	SourceDestCheckDisable SourceDestCheckMode = "disable"
	SourceDestCheckReport  SourceDestCheckMode = "report"
	SourceDestCheckIgnore  SourceDestCheckMode = "ignore"
)

// ParseSourceDestCheckMode parses a --source-dest-check value.
func ParseSourceDestCheckMode(s string) (SourceDestCheckMode, error) {
	switch m := SourceDestCheckMode(strings.ToLower(strings.TrimSpace(s))); m {
	case SourceDestCheckDisable, SourceDestCheckReport, SourceDestCheckIgnore:
		return m, nil
	}
	return "", fmt.Errorf("--source-dest-check must be disable, report or ignore, not %q", s)
}

// ENICheck is the source/destination check of the ENI that receives an
// instance's routed traffic (its primary ENI).
type ENICheck struct {
	Instance string `json:"instance"`
	ENI      string `json:"eni"`
	On       bool   `json:"on"`
}

// ENIs reads and turns off the source/destination check of instances'
// primary ENIs. pkg/cloud implements it.
type ENIs interface {
	// SourceDestChecks returns the check of each instance's primary ENI,
	// keyed by instance ID. Instances that do not exist (any more) are
	// absent.
	SourceDestChecks(ctx context.Context, instanceIDs []string) (map[string]ENICheck, error)
	// DisableSourceDestCheck turns the check off on the given ENIs and
	// waits until each reads back off. The result has an entry per
	// instance: nil once its ENI reads off.
	DisableSourceDestCheck(ctx context.Context, checks []ENICheck) map[string]error
}

// ReasonSourceDestCheckOn is the problem of a node whose primary ENI has its
// source/destination check on (or unknown), so its route carries nothing.
const ReasonSourceDestCheckOn = "SourceDestCheckOn"

// EventSourceDestCheckDisabled is the event of a check turned off.
const EventSourceDestCheckDisabled = "SourceDestCheckDisabled"

// Values of ENIReport.SourceDestCheck.
const (
	CheckOn      = "on"
	CheckOff     = "off"
	CheckUnknown = "unknown"
)

// ENIReport is the check of one node's instance, as audit shows it.
type ENIReport struct {
	Node     string `json:"node"`
	Instance string `json:"instance"`
	ENI      string `json:"eni,omitempty"`
	// SourceDestCheck is on, off or unknown (never read).
	SourceDestCheck string `json:"sourceDestCheck"`
	// Detail says what was done or why it is unknown.
	Detail string `json:"detail,omitempty"`
}

// checkMemory keeps the last check read per instance, so that a failed
// read does not flip published nodes, and so that passes between resyncs
// only ask about the checks that may change the outcome. It is shared by the
// worker and Audit.
type checkMemory struct {
	mu       sync.Mutex
	last     map[string]ENICheck
	lastFull time.Time
}

func (m *checkMemory) remember(checks map[string]ENICheck, asked []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]ENICheck{}
	}
	for _, id := range asked {
		if ck, ok := checks[id]; ok {
			m.last[id] = ck
		} else {
			delete(m.last, id)
		}
	}
}

func (m *checkMemory) recall(ids []string) map[string]ENICheck {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]ENICheck{}
	for _, id := range ids {
		if ck, ok := m.last[id]; ok {
			out[id] = ck
		}
	}
	return out
}

// toRead returns the instances whose check a pass must read: all of them
// once a resync period has passed since the last full read (a check turned
// back on out of band is seen then), else only those never read or last
// read on (the only ones whose outcome can change by themselves). full
// reports which.
func (m *checkMemory) toRead(ids []string, now time.Time, period time.Duration) (ask []string, full bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The resync ticker and the passes drift by a few milliseconds: a
	// tenth of the period of slack keeps every resync pass a full one.
	if m.lastFull.IsZero() || now.Sub(m.lastFull) >= period-period/10 {
		return ids, true
	}
	for _, id := range ids {
		if ck, ok := m.last[id]; !ok || ck.On {
			ask = append(ask, id)
		}
	}
	return ask, false
}

func (m *checkMemory) fullReadAt(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastFull = t
}

// sourceDestState is what a pass knows of the checks.
type sourceDestState struct {
	// checks by instance; an instance of a desired route missing here is
	// unknown.
	checks map[string]ENICheck
	// readErr is why the checks could not be read this pass (nil: read).
	readErr error
	// disabled and failed are the outcome of disabling, by instance.
	disabled map[string]bool
	failed   map[string]error
}

// observeSourceDestChecks reads the check of the instances with a desired
// route: every one at the first pass and once per resync period, those never
// read or last read on in between. A failed read fails the pass (it is
// retried) and falls back to the checks last read.
func (c *Controller) observeSourceDestChecks(ctx context.Context, obs *observation) {
	if c.cfg.SourceDestCheck == SourceDestCheckIgnore || c.cfg.SourceDestCheck == "" {
		return
	}
	var ids []string
	for _, r := range obs.desired {
		ids = append(ids, r.NextHop)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	st := &sourceDestState{checks: map[string]ENICheck{}, disabled: map[string]bool{}, failed: map[string]error{}}
	obs.sourceDest = st
	if len(ids) == 0 {
		return
	}
	now := c.clock.Now()
	ask, full := c.checkMemory.toRead(ids, now, c.cfg.ResyncPeriod)
	st.checks = c.checkMemory.recall(ids)
	if len(ask) == 0 {
		return
	}
	checks, err := c.enis.SourceDestChecks(ctx, ask)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading the ENI source/destination checks; using the values last read")
		st.readErr = err
		obs.errs = append(obs.errs, fmt.Errorf("reading the ENI source/destination checks: %w", err))
		return
	}
	c.checkMemory.remember(checks, ask)
	if full {
		c.checkMemory.fullReadAt(now)
	}
	for _, id := range ask {
		if ck, ok := checks[id]; ok {
			st.checks[id] = ck
		} else {
			delete(st.checks, id)
		}
	}
}

// disableSourceDestChecks turns off the checks found on, in disable mode and
// outside dry runs, and records the outcome in the observation.
func (c *Controller) disableSourceDestChecks(ctx context.Context, obs *observation) []error {
	st := obs.sourceDest
	if st == nil || c.cfg.SourceDestCheck != SourceDestCheckDisable || c.cfg.DryRun {
		return nil
	}
	var on []ENICheck
	for _, id := range sortedKeys(st.checks) {
		if ck := st.checks[id]; ck.On {
			on = append(on, ck)
		}
	}
	if len(on) == 0 {
		return nil
	}
	logger := klog.FromContext(ctx)
	results := c.enis.DisableSourceDestCheck(ctx, on)
	var errs []error
	for _, ck := range on {
		err, ok := results[ck.Instance]
		if !ok {
			err = fmt.Errorf("no result for ENI %s of instance %s", ck.ENI, ck.Instance)
		}
		if err != nil {
			st.failed[ck.Instance] = err
			errs = append(errs, fmt.Errorf("turning off the source/destination check of ENI %s of instance %s: %w", ck.ENI, ck.Instance, err))
			continue
		}
		ck.On = false
		st.checks[ck.Instance] = ck
		st.disabled[ck.Instance] = true
		logger.Info("Turned off the ENI source/destination check", "instance", ck.Instance, "eni", ck.ENI)
	}
	c.checkMemory.remember(st.checks, sortedKeys(st.checks))
	return errs
}

// markSourceDestChecks downgrades the in-sync routes of nodes whose ENI
// has the check on (or unknown) and reports each such node once.
func (c *Controller) markSourceDestChecks(rep *Report, obs *observation) {
	st := obs.sourceDest
	if st == nil {
		return
	}
	nodeInstance := map[string]string{}
	for _, rr := range rep.Routes {
		nodeInstance[rr.Node] = rr.NextHop
	}
	blocked := map[string]string{} // node → detail
	for _, node := range sortedKeys(nodeInstance) {
		inst := nodeInstance[node]
		ck, known := st.checks[inst]
		er := ENIReport{Node: node, Instance: inst, ENI: ck.ENI, SourceDestCheck: CheckOff}
		var detail string
		switch {
		case !known:
			er.SourceDestCheck = CheckUnknown
			detail = fmt.Sprintf("the source/destination check of instance %s's primary ENI is unknown", inst)
			if st.readErr != nil {
				detail += ": " + st.readErr.Error()
			} else {
				detail += ": ECS lists no primary ENI for it (a RAM policy without ecs:DescribeNetworkInterfaces also answers with an empty list)"
			}
		case ck.On:
			er.SourceDestCheck = CheckOn
			detail = fmt.Sprintf("ENI %s of instance %s has the source/destination check on and drops the node's pod traffic", ck.ENI, inst)
			switch {
			case st.failed[inst] != nil:
				detail += "; turning it off failed: " + st.failed[inst].Error()
			case c.cfg.SourceDestCheck == SourceDestCheckDisable && c.cfg.DryRun:
				detail += "; dry run: it would be turned off"
			case c.cfg.SourceDestCheck == SourceDestCheckDisable:
				detail += "; it will be turned off"
			default:
				detail += "; turn it off (--source-dest-check=report)"
			}
		case st.disabled[inst]:
			er.Detail = "turned off by this pass"
		}
		if detail != "" {
			er.Detail = detail
			blocked[node] = detail
		}
		rep.ENIs = append(rep.ENIs, er)
	}
	for i, rr := range rep.Routes {
		if d, ok := blocked[rr.Node]; ok && rr.State == StateInSync {
			rep.Routes[i].State, rep.Routes[i].Detail = StateSourceDestCheck, d
		}
	}
	for _, node := range sortedKeys(blocked) {
		rep.Problems = append(rep.Problems, Problem{Object: "Node/" + node, Node: node, Reason: ReasonSourceDestCheckOn, Message: blocked[node]})
	}
}

// emitSourceDestEvents records a Normal event on each node whose check this
// pass turned off.
func (c *Controller) emitSourceDestEvents(obs *observation, rep *Report) {
	st := obs.sourceDest
	if st == nil || c.recorder == nil || len(st.disabled) == 0 {
		return
	}
	for _, er := range rep.ENIs {
		if !st.disabled[er.Instance] {
			continue
		}
		if ref := c.objectRef("Node/" + er.Node); ref != nil {
			c.recorder.Eventf(ref, corev1.EventTypeNormal, EventSourceDestCheckDisabled,
				"turned off the source/destination check of ENI %s of instance %s so that the node's routes carry pod traffic", er.ENI, er.Instance)
		}
	}
}

// errNoENIs is returned by New when the mode needs an ENIs implementation
// and none was given.
var errNoENIs = errors.New("route controller: --source-dest-check=disable or report needs ENI access")
