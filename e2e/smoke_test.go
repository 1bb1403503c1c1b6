//go:build e2e

package e2e

import (
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud/alisim"
)

// TestEnvironment proves the harness itself: the control plane serves, the
// ServiceAccount of deploy/base authenticates with its TokenRequest token,
// RBAC grants it what the publisher needs and nothing like admin rights, the
// SpiderIPPool CRD is served and the simulator answers.
func TestEnvironment(t *testing.T) {
	s := newScenario(t)
	ctx := s.ctx

	cfg, err := clientcmd.BuildConfigFromFlags("", env.PublisherKubeconfig)
	if err != nil {
		t.Fatalf("loading the publisher kubeconfig: %v", err)
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("building the publisher client: %v", err)
	}

	review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	wantUser := "system:serviceaccount:" + env.ServiceAccountNamespace + ":" + env.ServiceAccountName
	if got := review.Status.UserInfo.Username; got != wantUser {
		t.Errorf("publisher identity = %q, want %q", got, wantUser)
	}

	if _, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the publisher's ServiceAccount cannot list nodes: %v", err)
	}
	if _, err := sa.CoordinationV1().Leases(env.ServiceAccountNamespace).List(ctx, metav1.ListOptions{}); err != nil && !apierrors.IsForbidden(err) {
		t.Errorf("listing leases: %v", err)
	}
	_, err = sa.CoreV1().Secrets(env.ServiceAccountNamespace).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as the publisher: got %v, want Forbidden (RBAC must not grant it)", err)
	}
	if err := sa.CoreV1().Nodes().Delete(ctx, "cn-chengdu.i-2vcxxr", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("deleting a node as the publisher: got %v, want Forbidden", err)
	}

	if _, err := env.Dynamic.Resource(ippoolGVR).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the SpiderIPPool CRD is not served: %v", err)
	}

	st, err := env.Sim.State(ctx)
	if err != nil {
		t.Fatalf("reading simulator state: %v", err)
	}
	if len(st.VPCs) != 1 || st.VPCs[0].ID != alisim.DefaultVPCID {
		t.Errorf("simulator VPCs = %+v, want the default VPC", st.VPCs)
	}
	routes, err := env.Sim.Routes(ctx, "")
	if err != nil {
		t.Fatalf("listing simulator routes: %v", err)
	}
	var system int
	for _, r := range routes {
		if r.Type == alisim.EntryTypeSystem {
			system++
		}
		if strings.HasPrefix(r.Destination.String(), "10.244.") {
			t.Errorf("fresh simulator already has a pod route: %+v", r)
		}
	}
	if system == 0 {
		t.Errorf("the default route table has no system entries: %+v", routes)
	}
}
