package main

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/route"
)

// The node cache keeps exactly what the publisher reads: identity, labels,
// creation time, spec, addresses, conditions and the record of its own
// condition (which tells ours from another's).
func TestTrimCachedKeepsWhatThePublisherReads(t *testing.T) {
	created := metav1.Now()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: "cn-chengdu.i-2vcxxr", UID: "u-1", ResourceVersion: "42", CreationTimestamp: created,
			Labels:        map[string]string{"route.vpc-route-publisher.io/exclude": "true"},
			Annotations:   map[string]string{"node.alpha.kubernetes.io/ttl": "0", route.ConditionAnnotation: "True,NoRouteCreated,2026-12-01T05:00:00Z"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		},
		Spec: corev1.NodeSpec{PodCIDR: "10.244.0.0/24", PodCIDRs: []string{"10.244.0.0/24"}, ProviderID: "alicloud://cn-chengdu.i-2vcxxr"},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.10"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}},
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			Images:     []corev1.ContainerImage{{Names: []string{"example.invalid/calico/node:v3"}, SizeBytes: 1 << 27}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
	want := n.DeepCopy()
	want.Annotations, want.ManagedFields = map[string]string{route.ConditionAnnotation: "True,NoRouteCreated,2026-12-01T05:00:00Z"}, nil
	want.Status = corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: n.Status.Conditions}

	got, err := trimCached(n)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("trimmed node\n%+v\nwant\n%+v", got, want)
	}
	// Objects of other kinds pass through (managed fields dropped).
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}, Data: map[string]string{"k": "v"}}
	out, err := trimCached(cm)
	if err != nil || out.(*corev1.ConfigMap).ManagedFields != nil || out.(*corev1.ConfigMap).Data["k"] != "v" {
		t.Errorf("config map transformed to %+v, %v", out, err)
	}
}
