//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vpc-route-publisher/vpc-route-publisher/e2e/framework"
)

// Calico's IPAM resources as its Kubernetes datastore stores them
// (crd.projectcalico.org/v1; the suite also installs the projectcalico.org/v3
// CRDs, so the publisher must pick v1 as Calico does).
var (
	calicoAffinities = calicoGVR("blockaffinities")
	calicoPools      = calicoGVR("ippools")
	calicoBlocks     = calicoGVR("ipamblocks")
	calicoConfigs    = calicoGVR("ipamconfigs")
)

func calicoGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: resource}
}

// resetCalico deletes every Calico IPAM object.
func (s *scenario) resetCalico() {
	s.t.Helper()
	for _, gvr := range []schema.GroupVersionResource{calicoAffinities, calicoPools, calicoBlocks, calicoConfigs} {
		if err := env.Dynamic.Resource(gvr).DeleteCollection(s.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			s.t.Fatalf("deleting %s: %v", gvr.Resource, err)
		}
	}
}

func (s *scenario) applyCalico(gvr schema.GroupVersionResource, kind, name string, spec map[string]any) {
	s.t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gvr.GroupVersion().String(), "kind": kind,
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	client := env.Dynamic.Resource(gvr)
	cur, err := client.Get(s.ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = client.Create(s.ctx, u, metav1.CreateOptions{})
	case err == nil:
		u.SetResourceVersion(cur.GetResourceVersion())
		_, err = client.Update(s.ctx, u, metav1.UpdateOptions{})
	}
	if err != nil {
		s.t.Fatalf("applying %s %s: %v", kind, name, err)
	}
}

// calicoPool creates an IPPool; encapsulation is "" (none), "IPIP" or "VXLAN".
func (s *scenario) calicoPool(name, cidr, encapsulation string) {
	ipip, vxlan := "Never", "Never"
	switch encapsulation {
	case "IPIP":
		ipip = "Always"
	case "VXLAN":
		vxlan = "Always"
	}
	s.applyCalico(calicoPools, "IPPool", name, map[string]any{
		"cidr": cidr, "blockSize": int64(26), "ipipMode": ipip, "vxlanMode": vxlan, "natOutgoing": true, "nodeSelector": "all()",
	})
}

// affinityName is how Calico names a v1 BlockAffinity: node, then the CIDR.
func affinityName(node, cidr string) string {
	return node + "-" + strings.NewReplacer(".", "-", "/", "-").Replace(cidr)
}

// calicoAffinity writes node's affinity to a block in the given state, as
// calico-ipam does (spec.deleted is a string in crd.projectcalico.org/v1).
func (s *scenario) calicoAffinity(node, cidr, state string) {
	s.applyCalico(calicoAffinities, "BlockAffinity", affinityName(node, cidr), map[string]any{
		"node": node, "cidr": cidr, "state": state, "deleted": "false", "type": "host",
	})
}

// calicoBlock writes an IPAMBlock affine to host whose ordinal i is
// allocated to a pod of owners[i].
func (s *scenario) calicoBlock(cidr, host string, owners ...string) {
	allocations, attributes := []any{}, []any{}
	for i, o := range owners {
		allocations = append(allocations, int64(i))
		attributes = append(attributes, map[string]any{
			"handle_id": fmt.Sprintf("k8s-pod-network.%d", i),
			"secondary": map[string]any{"namespace": "default", "node": o, "pod": fmt.Sprintf("pod-%d", i)},
		})
	}
	s.applyCalico(calicoBlocks, "IPAMBlock", strings.NewReplacer(".", "-", "/", "-").Replace(cidr), map[string]any{
		"cidr": cidr, "affinity": "host:" + host, "allocations": allocations, "attributes": attributes,
		"unallocated": []any{}, "strictAffinity": false,
	})
}

func (s *scenario) calicoStrictAffinity(strict bool) {
	s.applyCalico(calicoConfigs, "IPAMConfig", "default", map[string]any{"strictAffinity": strict, "autoAllocateBlocks": true})
}

// TestCalicoMode: calico-ipam's confirmed block affinities are routed to
// their nodes (sibling blocks of one node merged), a tunnelled pool's blocks
// get no route, a block moving to another node moves its route, and
// borrowing is reported on the borrowing node, in the metrics and in the
// audit, which also notes the tunnelled pool.
func TestCalicoMode(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR))
	s.createNode(node(nodeS, nodeS))
	s.createNode(node(nodeT, nodeT))
	s.calicoStrictAffinity(true)
	s.calicoPool("routed", "10.244.0.0/17", "")
	s.calicoPool("tunnel", "10.244.128.0/17", "VXLAN")
	s.calicoAffinity(nodeR, "10.244.0.0/26", "confirmed")
	s.calicoAffinity(nodeR, "10.244.0.64/26", "confirmed")
	s.calicoAffinity(nodeS, "10.244.1.0/26", "confirmed")
	s.calicoAffinity(nodeS, "10.244.2.0/26", "pending")
	s.calicoAffinity(nodeT, "10.244.128.0/26", "confirmed")
	o := s.options()
	o.CIDRSource = "calico"
	p := s.start(o)

	s.waitTable(want{"10.244.0.0/25": "i-2vcxxr", "10.244.1.0/26": "i-2vcxxs"})
	s.waitNodeCondition(nodeS)

	// Calico moves 10.244.0.64/26 from node R to node S: R's affinity is
	// released (pendingDeletion, then deleted), S's confirmed.
	s.calicoAffinity(nodeR, "10.244.0.64/26", "pendingDeletion")
	if err := env.Dynamic.Resource(calicoAffinities).Delete(s.ctx, affinityName(nodeR, "10.244.0.64/26"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.calicoAffinity(nodeS, "10.244.0.64/26", "confirmed")
	s.waitTable(want{"10.244.0.0/26": "i-2vcxxr", "10.244.0.64/26": "i-2vcxxs", "10.244.1.0/26": "i-2vcxxs"})

	// strictAffinity turned off, and a pod of node T holding an address of
	// node R's block.
	s.calicoStrictAffinity(false)
	s.calicoBlock("10.244.0.0/26", nodeR, nodeR, nodeT)
	msg := s.waitEventMatching(nodeT, "RouteProblem", "borrowed")
	if !strings.Contains(msg, "10.244.0.1") || !strings.Contains(msg, "calicoctl ipam configure --strictaffinity=true") {
		t.Errorf("the borrowing event does not name the address and the fix: %q", msg)
	}
	s.waitMetric(p, "problems{BorrowedAddresses,StrictAffinityDisabled}=1", func(m framework.Metrics) bool {
		return m.Get("vpc_route_publisher_problems", map[string]string{"reason": "BorrowedAddresses"}) == 1 &&
			m.Get("vpc_route_publisher_problems", map[string]string{"reason": "StrictAffinityDisabled"}) == 1
	})

	res, err := framework.RunAudit(s.ctx, env.Sim, o, "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Routes []struct {
			Node, Destination, State string
		}
		Problems []struct{ Object, Reason, Message string }
		Notes    []struct{ Object, Message string }
	}
	if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
		t.Fatalf("audit -o json: %v\n%s\n%s", err, res.Stdout, res.Stderr)
	}
	if res.ExitCode != 1 {
		t.Errorf("audit with borrowing exited %d, want 1 (problems)", res.ExitCode)
	}
	if len(rep.Routes) != 3 {
		t.Errorf("audit lists %d routes, want 3: %+v", len(rep.Routes), rep.Routes)
	}
	for _, r := range rep.Routes {
		if r.State != "in-sync" {
			t.Errorf("audit: route %s of %s is %s", r.Destination, r.Node, r.State)
		}
	}
	problems := map[string]bool{}
	for _, pr := range rep.Problems {
		problems[pr.Object+" "+pr.Reason] = true
	}
	for _, want := range []string{"Node/" + nodeT + " BorrowedAddresses", "IPAMConfig/default StrictAffinityDisabled"} {
		if !problems[want] {
			t.Errorf("audit problems %v lack %s", rep.Problems, want)
		}
	}
	var tunnelNoted bool
	for _, n := range rep.Notes {
		tunnelNoted = tunnelNoted || n.Object == "IPPool/tunnel" && strings.Contains(n.Message, "tunnelled")
	}
	if !tunnelNoted {
		t.Errorf("audit notes %v do not name the tunnelled pool", rep.Notes)
	}
}

// TestAutoModePicksCalico: with block affinities and no node pod CIDRs, the
// default auto mode routes Calico's blocks.
func TestAutoModePicksCalico(t *testing.T) {
	s := newScenario(t)
	s.createNode(node(nodeR, nodeR))
	s.calicoStrictAffinity(true)
	s.calicoPool("routed", "10.244.0.0/16", "")
	s.calicoAffinity(nodeR, "10.244.5.0/26", "confirmed")
	s.start(s.options())
	s.waitTable(want{"10.244.5.0/26": "i-2vcxxr"})
}

// waitEventMatching waits for an event with reason on the named object
// whose message contains text (events of earlier tests on a node of the
// same name may be around), and returns its message.
func (s *scenario) waitEventMatching(objectName, reason, text string) string {
	s.t.Helper()
	var msg string
	err := framework.Poll(s.ctx, pollEvery, waitTimeout, func(ctx context.Context) (bool, error) {
		evs, err := env.Kube.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == objectName && e.Reason == reason && strings.Contains(e.Message, text) {
				msg = e.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		s.t.Fatalf("no %s event on %s mentioning %q: %v", reason, objectName, text, err)
	}
	return msg
}
