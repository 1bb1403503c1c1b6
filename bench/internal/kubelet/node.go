package kubelet

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons and messages as written by the kubelet and by route
// controllers, so that the objects read like a real cluster's.
const (
	reasonNoRouteCreated  = "NoRouteCreated"
	messageNoRouteCreated = "Node created without a route"
)

// Node returns the node as the kubelet registers it: labels, annotations,
// providerID, taints none, and a full status (addresses, capacity,
// allocatable, conditions, daemon endpoints, node info and the 50 largest
// images, the kubelet's default nodeStatusMaxImages). Its pod CIDR is not
// set: the node IPAM controller assigns it afterwards (see Register).
//
// NetworkUnavailable starts True, as route controllers expect of a node
// whose route does not exist yet.
func (f Fleet) Node(m Member, now time.Time) *corev1.Node {
	ts := metav1.NewTime(now.Truncate(time.Second))
	cpu, mem, pods := resource.MustParse("4"), resource.MustParse("15995488Ki"), resource.MustParse("110")
	allocCPU, allocMem := resource.MustParse("3900m"), resource.MustParse("13162592Ki")
	storage, allocStorage := resource.MustParse("123722704Ki"), resource.MustParse("114022843818")
	zero := resource.MustParse("0")
	hostname := fmt.Sprintf("iz2vcbench%012dz", m.Index)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.Name,
			Labels: map[string]string{
				"beta.kubernetes.io/arch":                  "amd64",
				"beta.kubernetes.io/instance-type":         "ecs.g7.xlarge",
				"beta.kubernetes.io/os":                    "linux",
				"failure-domain.beta.kubernetes.io/region": f.Region,
				"failure-domain.beta.kubernetes.io/zone":   f.Zone,
				"kubernetes.io/arch":                       "amd64",
				"kubernetes.io/hostname":                   hostname,
				"kubernetes.io/os":                         "linux",
				"node.kubernetes.io/instance-type":         "ecs.g7.xlarge",
				"topology.kubernetes.io/region":            f.Region,
				"topology.kubernetes.io/zone":              f.Zone,
				"node-role.kubernetes.io/worker":           "",
				"alibabacloud.com/nodepool-id":             "np-bench-general",
			},
			Annotations: map[string]string{
				"node.alpha.kubernetes.io/ttl":                           "0",
				"volumes.kubernetes.io/controller-managed-attach-detach": "true",
				"projectcalico.org/IPv4Address":                          m.InternalIP.String() + "/24",
				"csi.volume.kubernetes.io/nodeid":                        `{"diskplugin.csi.alibabacloud.com":"` + m.InstanceID + `"}`,
			},
		},
		Spec: corev1.NodeSpec{
			ProviderID: f.ProviderID(m),
		},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:              cpu,
				corev1.ResourceMemory:           mem,
				corev1.ResourcePods:             pods,
				corev1.ResourceEphemeralStorage: storage,
				"hugepages-1Gi":                 zero,
				"hugepages-2Mi":                 zero,
			},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:              allocCPU,
				corev1.ResourceMemory:           allocMem,
				corev1.ResourcePods:             pods,
				corev1.ResourceEphemeralStorage: allocStorage,
				"hugepages-1Gi":                 zero,
				"hugepages-2Mi":                 zero,
			},
			Conditions: append(f.heartbeat(ts), corev1.NodeCondition{
				Type:               corev1.NodeNetworkUnavailable,
				Status:             corev1.ConditionTrue,
				Reason:             reasonNoRouteCreated,
				Message:            messageNoRouteCreated,
				LastHeartbeatTime:  ts,
				LastTransitionTime: ts,
			}),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: m.InternalIP.String()},
				{Type: corev1.NodeHostName, Address: hostname},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               digest("machine", m.Name)[:32],
				SystemUUID:              uuidLike(digest("uuid", m.Name)),
				BootID:                  uuidLike(digest("boot", m.Name)),
				KernelVersion:           "5.10.134-19.1.al8.x86_64",
				OSImage:                 "Alibaba Cloud Linux 3.2104 U12 (OpenAnolis Edition)",
				ContainerRuntimeVersion: "containerd://1.7.28",
				KubeletVersion:          f.KubeletVersion,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
			Images: images(),
			RuntimeHandlers: []corev1.NodeRuntimeHandler{
				{Name: "runc", Features: &corev1.NodeRuntimeHandlerFeatures{RecursiveReadOnlyMounts: ptr(true), UserNamespaces: ptr(true)}},
				{Name: "", Features: &corev1.NodeRuntimeHandlerFeatures{RecursiveReadOnlyMounts: ptr(true), UserNamespaces: ptr(true)}},
			},
			Features: &corev1.NodeFeatures{SupplementalGroupsPolicy: ptr(true)},
		},
	}
}

// heartbeat returns the conditions the kubelet refreshes on every status update.
func (f Fleet) heartbeat(ts metav1.Time) []corev1.NodeCondition {
	return []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: ts, LastTransitionTime: ts,
			Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: ts, LastTransitionTime: ts,
			Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: ts, LastTransitionTime: ts,
			Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: ts, LastTransitionTime: ts,
			Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
}

// imageCatalog is what a worker node of a Calico cluster on Alibaba Cloud
// typically has pulled: system components, the CNI, CSI, monitoring agents and
// a spread of application images. Sizes are in bytes.
var imageCatalog = []struct {
	repo, tag string
	size      int64
}{
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/pause", "3.10", 320368},
	{"docker.io/calico/node", "v3.30.3", 158294016},
	{"docker.io/calico/cni", "v3.30.3", 95712304},
	{"docker.io/calico/kube-controllers", "v3.30.3", 35241122},
	{"docker.io/calico/typha", "v3.30.3", 31887233},
	{"docker.io/calico/csi", "v3.30.3", 9412877},
	{"docker.io/calico/node-driver-registrar", "v3.30.3", 12244511},
	{"registry.k8s.io/kube-proxy", "v1.37.2", 31210554},
	{"registry.k8s.io/coredns/coredns", "v1.12.4", 21846501},
	{"registry.k8s.io/metrics-server/metrics-server", "v0.8.0", 19471320},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/csi-plugin", "v1.33.4-aliyun", 176843008},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/csi-node-driver-registrar", "v2.13.0", 10985472},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/csi-provisioner", "v5.2.0", 27983360},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/node-problem-detector", "v0.8.20", 63111004},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/loongcollector", "v3.1.4.0", 214220800},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/ack-node-local-dns", "v1.23.1", 37203968},
	{"registry-cn-chengdu-vpc.ack.aliyuncs.com/acs/terway-eniip", "v1.16.2", 98566144},
	{"quay.io/prometheus/node-exporter", "v1.9.1", 12956672},
	{"quay.io/prometheus/prometheus", "v3.5.0", 132145152},
	{"quay.io/prometheus/alertmanager", "v0.28.1", 30408704},
	{"quay.io/prometheus-operator/prometheus-config-reloader", "v0.85.0", 6553600},
	{"registry.k8s.io/kube-state-metrics/kube-state-metrics", "v2.16.0", 18560000},
	{"docker.io/grafana/grafana", "12.1.1", 201916416},
	{"docker.io/grafana/loki", "3.5.3", 42991616},
	{"docker.io/grafana/promtail", "3.5.3", 82837504},
	{"docker.io/fluent/fluent-bit", "4.0.7", 38273024},
	{"registry.k8s.io/ingress-nginx/controller", "v1.13.1", 110100480},
	{"registry.k8s.io/ingress-nginx/kube-webhook-certgen", "v1.6.1", 23068672},
	{"quay.io/jetstack/cert-manager-controller", "v1.18.2", 20971520},
	{"quay.io/jetstack/cert-manager-webhook", "v1.18.2", 15728640},
	{"quay.io/jetstack/cert-manager-cainjector", "v1.18.2", 14680064},
	{"docker.io/library/nginx", "1.29.1", 72226816},
	{"docker.io/library/nginx", "1.28.0-alpine", 21233664},
	{"docker.io/library/redis", "8.2.1", 52428800},
	{"docker.io/library/redis", "7.4.5-alpine", 17825792},
	{"docker.io/library/postgres", "17.6", 158334976},
	{"docker.io/library/mysql", "8.4.6", 236978176},
	{"docker.io/library/rabbitmq", "4.1.4-management", 113246208},
	{"docker.io/library/busybox", "1.37.0", 2228224},
	{"docker.io/library/alpine", "3.22.1", 3801088},
	{"docker.io/library/python", "3.13.7-slim", 43909120},
	{"docker.io/library/golang", "1.25.1", 310378496},
	{"docker.io/library/openjdk", "21-jdk-slim", 219152384},
	{"docker.io/library/node", "22.19.0-slim", 78643200},
	{"docker.io/bitnami/kafka", "4.0.0", 190840832},
	{"docker.io/bitnami/zookeeper", "3.9.3", 176160768},
	{"docker.io/istio/proxyv2", "1.27.1", 97517568},
	{"docker.io/istio/pilot", "1.27.1", 75497472},
	{"registry.example.internal/shop/checkout", "2025.11.3", 128974848},
	{"registry.example.internal/shop/catalog", "2025.11.1", 96468992},
	{"registry.example.internal/shop/frontend", "2025.11.4", 64487424},
	{"registry.example.internal/shop/payments", "2025.10.28", 118489088},
}

// images returns the node's image list, largest first and at most 50, as
// the kubelet reports it.
func images() []corev1.ContainerImage {
	const maxImages = 50
	out := make([]corev1.ContainerImage, 0, len(imageCatalog))
	for _, im := range imageCatalog {
		out = append(out, corev1.ContainerImage{
			Names:     []string{im.repo + "@sha256:" + digest(im.repo, im.tag), im.repo + ":" + im.tag},
			SizeBytes: im.size,
		})
	}
	slices.SortStableFunc(out, func(a, b corev1.ContainerImage) int { return cmp.Compare(b.SizeBytes, a.SizeBytes) })
	if len(out) > maxImages {
		out = out[:maxImages]
	}
	return out
}

// digest returns a stable hex SHA-256 of its parts, standing in for image
// digests and machine IDs.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func uuidLike(hexs string) string {
	return hexs[0:8] + "-" + hexs[8:12] + "-" + hexs[12:16] + "-" + hexs[16:20] + "-" + hexs[20:32]
}

func ptr[T any](v T) *T { return &v }
