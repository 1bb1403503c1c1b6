//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// setCheck flips the check of an instance's primary ENI out of band.
func (s *scenario) setCheck(instance string, on bool) {
	s.t.Helper()
	if err := env.Sim.SetPrimaryENICheck(s.ctx, instance, on); err != nil {
		s.t.Fatalf("setting the ENI check of %s: %v", instance, err)
	}
}

// waitCheck waits until the check of an instance's primary ENI reads on.
func (s *scenario) waitCheck(instance string, on bool) {
	s.t.Helper()
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		e, err := env.Sim.PrimaryENI(ctx, instance)
		if err != nil {
			return false, err
		}
		return e.SourceDestCheck == on, nil
	})
	if err != nil {
		s.t.Fatalf("the ENI check of %s never read %v: %v", instance, on, err)
	}
}

// waitConditionStatus waits until the node's NetworkUnavailable condition
// has the status.
func (s *scenario) waitConditionStatus(name string, status corev1.ConditionStatus) {
	s.t.Helper()
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable {
				return c.Status == status, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("node %s never got NetworkUnavailable=%s: %v; last: %+v", name, status, err, s.nodeCondition(name))
	}
}

func sdcEntries(m framework.Metrics) float64 {
	return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "source_dest_check"))
}

// TestSourceDestCheckDisable: the default mode turns the check of a node's
// primary ENI off, publishes the node only once it reads off, and turns it
// off again when it is turned back on out of band.
func TestSourceDestCheckDisable(t *testing.T) {
	s := newScenario(t)
	s.setCheck("i-2vcxxs", true)
	s.createNode(node(nodeR, "cn-chengdu.i-2vcxxr", "10.244.0.0/24"))
	s.createNode(node(nodeS, "cn-chengdu.i-2vcxxs", "10.244.1.0/24"))
	p := s.start(s.options())

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	s.waitCheck("i-2vcxxs", false)
	s.waitNodeCondition(nodeS)
	s.waitNodeCondition(nodeR)
	if msg := s.waitEvent(nodeS, "SourceDestCheckDisabled"); !strings.Contains(msg, "i-2vcxxs") {
		t.Errorf("event message %q does not name the instance", msg)
	}
	if n := s.counter("ModifyNetworkInterfaceAttribute", "Success"); n != 1 {
		t.Errorf("%d successful ModifyNetworkInterfaceAttribute calls, want 1 (i-2vcxxr's check was off)", n)
	}
	s.waitMetric(p, "2 present, 0 source_dest_check", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "present")) == 2 && sdcEntries(m) == 0
	})

	// Turned back on out of band: the next resync turns it off again.
	s.setCheck("i-2vcxxr", true)
	s.waitCheck("i-2vcxxr", false)
	if n := s.counter("ModifyNetworkInterfaceAttribute", "Success"); n != 2 {
		t.Errorf("%d successful ModifyNetworkInterfaceAttribute calls, want 2", n)
	}
	s.waitEvent(nodeR, "SourceDestCheckDisabled")
}

// TestSourceDestCheckReport: report mode writes the route but keeps the node
// not ready and reported while its ENI has the check on; a check turned back
// on out of band is detected at the next resync.
func TestSourceDestCheckReport(t *testing.T) {
	s := newScenario(t)
	s.setCheck("i-2vcxxs", true)
	s.createNode(node(nodeR, "cn-chengdu.i-2vcxxr", "10.244.0.0/24"))
	s.createNode(node(nodeS, "cn-chengdu.i-2vcxxs", "10.244.1.0/24"))
	o := s.options()
	o.ExtraArgs = append(o.ExtraArgs, "--source-dest-check=report")
	p := s.start(o)

	s.waitTable(want{"10.244.0.0/24": "i-2vcxxr", "10.244.1.0/24": "i-2vcxxs"})
	s.waitNodeCondition(nodeR)
	s.waitConditionStatus(nodeS, corev1.ConditionTrue)
	s.waitMetric(p, "1 present, 1 source_dest_check, a SourceDestCheckOn problem", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "present")) == 1 && sdcEntries(m) == 1 &&
			m.Get("vpc_route_publisher_problems", map[string]string{"reason": "SourceDestCheckOn"}) == 1
	})
	if msg := s.waitEvent(nodeS, "RouteProblem"); !strings.Contains(msg, "source/destination check on") {
		t.Errorf("RouteProblem event %q does not explain the check", msg)
	}
	if n := s.counter("ModifyNetworkInterfaceAttribute"); n != 0 {
		t.Fatalf("report mode called ModifyNetworkInterfaceAttribute %d times", n)
	}
	if e, err := env.Sim.PrimaryENI(s.ctx, "i-2vcxxs"); err != nil || !e.SourceDestCheck {
		t.Fatalf("report mode changed the check: %+v, %v", e, err)
	}

	audit, err := framework.RunAudit(s.ctx, env.Sim, s.options(), "table")
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if audit.ExitCode != 1 || !strings.Contains(audit.Stdout, "SOURCE/DEST CHECK") || !strings.Contains(audit.Stdout, "source-dest-check") {
		t.Errorf("audit exit %d, output:\n%s", audit.ExitCode, audit.Stdout)
	}

	// The operator turns it off: published at the next resync.
	s.setCheck("i-2vcxxs", false)
	s.waitNodeCondition(nodeS)
	// Turned back on out of band on the other node: detected at the next resync.
	s.setCheck("i-2vcxxr", true)
	s.waitConditionStatus(nodeR, corev1.ConditionTrue)
	s.waitMetric(p, "i-2vcxxr's entry reported", func(m framework.Metrics) bool { return sdcEntries(m) == 1 })
}

// TestSourceDestCheckIgnore: ignore mode neither reads nor writes the check
// and publishes the node whatever it is.
func TestSourceDestCheckIgnore(t *testing.T) {
	s := newScenario(t)
	s.setCheck("i-2vcxxs", true)
	s.createNode(node(nodeS, "cn-chengdu.i-2vcxxs", "10.244.1.0/24"))
	o := s.options()
	o.ExtraArgs = append(o.ExtraArgs, "--source-dest-check=ignore")
	p := s.start(o)

	s.waitTable(want{"10.244.1.0/24": "i-2vcxxs"})
	s.waitNodeCondition(nodeS)
	s.waitMetric(p, "1 present", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_route_entries", entriesMetric(env.Sim.TableID, "present")) == 1 && sdcEntries(m) == 0
	})
	if n := s.counter("DescribeNetworkInterfaces") + s.counter("ModifyNetworkInterfaceAttribute"); n != 0 {
		t.Fatalf("ignore mode made %d ENI calls", n)
	}
	if e, err := env.Sim.PrimaryENI(s.ctx, "i-2vcxxs"); err != nil || !e.SourceDestCheck {
		t.Fatalf("ignore mode changed the check: %+v, %v", e, err)
	}
}
