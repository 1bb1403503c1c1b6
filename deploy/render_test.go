package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vpc-route-publisher/vpc-route-publisher/pkg/cloud"
)

var update = flag.Bool("update", false, "rewrite the copies of deploy/prometheus/rules.yaml and of the dashboard from their sources")

// The files that exist twice because Helm can only read files inside its
// chart and kustomize only files inside its kustomization: the source first,
// then its copy.
var byteCopies = [][2]string{
	{"prometheus/rules.yaml", "helm/vpc-route-publisher/files/rules.yaml"},
	{"monitoring/dashboards/vpc-route-publisher.json", "helm/vpc-route-publisher/files/dashboards/vpc-route-publisher.json"},
}

const (
	rulesSource         = "prometheus/rules.yaml"
	prometheusRuleCopy  = "monitoring/prometheusrule.yaml"
	prometheusRuleHeadr = `# The groups below are ../prometheus/rules.yaml verbatim (indented under
# spec); deploy/render_test.go fails when they differ. Edit rules.yaml, then
# run ` + "`go test ./deploy -run TestRuleCopies -update`" + ` to refresh the copies.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: vpc-route-publisher
  namespace: kube-system
  labels:
    app.kubernetes.io/name: vpc-route-publisher
    app.kubernetes.io/instance: vpc-route-publisher
spec:
`
)

// kubeVersion is passed to helm template, which otherwise checks the chart's
// kubeVersion constraint against a built-in default.
const kubeVersion = "1.34.0"

// tool returns the path of a pinned tool in bin/. Outside CI a missing tool
// skips the test (build it with `make tools`); in CI (CI=true) it fails it,
// so that the checks cannot silently stop running.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("bin/%s is missing (run `make tools`): %v", name, err)
		}
		t.Skipf("bin/%s is not built; run `make tools` (or `make deploy-check`) to run this test", name)
	}
	return p
}

// run executes a tool with a deadline and returns its standard output.
func run(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func mustRun(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := run(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// object is one parsed manifest.
type object = map[string]any

// parseManifests splits a multi-document YAML stream into objects keyed by
// kind/namespace/name.
func parseManifests(t *testing.T, stream []byte) map[string]object {
	t.Helper()
	objs := map[string]object{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("splitting manifests: %v", err)
		}
		var o object
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatalf("parsing manifest %q: %v", doc, err)
		}
		if len(o) == 0 {
			continue
		}
		meta, _ := o["metadata"].(map[string]any)
		key := fmt.Sprintf("%v/%v/%v", o["kind"], meta["namespace"], meta["name"])
		if _, dup := objs[key]; dup {
			t.Fatalf("object %s rendered twice", key)
		}
		objs[key] = o
	}
	return objs
}

// helmOnlyLabels are the labels Helm charts conventionally add and a plain
// kustomize base does not; they are ignored in the comparison.
var helmOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}

// normalize removes what legitimately differs between the renderings and
// puts order-insensitive lists in a canonical order: lists of named items
// (containers, env, volumes, ports, ...) by name, and the flags of a
// container's command line (the subcommand stays first).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
		if labels, ok := v["labels"].(map[string]any); ok {
			for _, l := range helmOnlyLabels {
				delete(labels, l)
			}
		}
		if args, ok := v["args"].([]any); ok && len(args) > 1 {
			flags := args[1:]
			sort.Slice(flags, func(i, j int) bool { return fmt.Sprint(flags[i]) < fmt.Sprint(flags[j]) })
		}
		return v
	case []any:
		named := len(v) > 0
		for i, e := range v {
			v[i] = normalize(e)
			if m, ok := v[i].(map[string]any); !ok || m["name"] == nil {
				named = false
			}
		}
		if named {
			sort.SliceStable(v, func(i, j int) bool {
				return fmt.Sprint(v[i].(map[string]any)["name"]) < fmt.Sprint(v[j].(map[string]any)["name"])
			})
		}
		return v
	default:
		return v
	}
}

// diff lists the paths at which a and b differ.
func diff(path string, a, b any) []string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			break
		}
		var out []string
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			out = append(out, diff(path+"."+k, av[k], bv[k])...)
		}
		return out
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			break
		}
		var out []string
		for i := range av {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])...)
		}
		return out
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	if as, ok := a.(string); ok {
		if bs, ok := b.(string); ok {
			i := 0
			for i < len(as) && i < len(bs) && as[i] == bs[i] {
				i++
			}
			return []string{fmt.Sprintf("%s: strings differ from byte %d: kustomize %q, helm %q", path, i, tail(as, i), tail(bs, i))}
		}
	}
	return []string{fmt.Sprintf("%s: kustomize %s, helm %s", path, compact(a), compact(b))}
}

func tail(s string, from int) string {
	if len(s)-from > 80 {
		return s[from:from+80] + "..."
	}
	return s[from:]
}

func compact(v any) string {
	if v == nil {
		return "<absent>"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// renderCase is one installation described both ways.
type renderCase struct {
	name string
	// components are kustomize components (paths relative to deploy/) added
	// to overlays/example.
	components []string
	// values are Helm values files (relative to deploy/) added to
	// testdata/values-example.yaml.
	values []string
}

var renderCases = []renderCase{
	{name: "example"},
	{name: "monitoring", components: []string{"monitoring"}, values: []string{"testdata/values-monitoring.yaml"}},
	{name: "cloud-config", components: []string{"components/cloud-config"}, values: []string{"testdata/values-cloud-config.yaml"}},
	{name: "rrsa", components: []string{"components/rrsa"}, values: []string{"testdata/values-rrsa.yaml"}},
	{name: "rrsa-webhook", components: []string{"components/rrsa-webhook"}, values: []string{"testdata/values-rrsa-webhook.yaml"}},
	{
		name:       "everything",
		components: []string{"monitoring", "components/rrsa"},
		values:     []string{"testdata/values-monitoring.yaml", "testdata/values-rrsa.yaml"},
	},
}

// kustomizeBuild renders overlays/example plus the given components through
// a temporary kustomization (kustomize refuses absolute paths, hence the
// relative ones).
func kustomizeBuild(t *testing.T, kustomize string, components []string) []byte {
	t.Helper()
	if len(components) == 0 {
		return mustRun(t, kustomize, "build", "overlays/example")
	}
	dir := t.TempDir()
	deployDir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(deployDir, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var k strings.Builder
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel("overlays/example") + "\ncomponents:\n")
	for _, c := range components {
		k.WriteString("- " + rel(c) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return mustRun(t, kustomize, "build", dir)
}

func helmTemplate(t *testing.T, helm string, values ...string) ([]byte, error) {
	t.Helper()
	args := []string{"template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system", "--kube-version", kubeVersion}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return run(t, helm, args...)
}

// TestHelmAndKustomizeRenderTheSameObjects renders every installation variant
// with both tools and compares them object by object.
func TestHelmAndKustomizeRenderTheSameObjects(t *testing.T) {
	helm, kustomize := tool(t, "helm"), tool(t, "kustomize")
	for _, tc := range renderCases {
		t.Run(tc.name, func(t *testing.T) {
			fromKustomize := parseManifests(t, kustomizeBuild(t, kustomize, tc.components))
			out, err := helmTemplate(t, helm, append([]string{"testdata/values-example.yaml"}, tc.values...)...)
			if err != nil {
				t.Fatal(err)
			}
			fromHelm := parseManifests(t, out)
			if len(fromKustomize) < 7 {
				t.Fatalf("kustomize rendered only %d objects: %v", len(fromKustomize), slices.Sorted(maps.Keys(fromKustomize)))
			}
			for key, k := range fromKustomize {
				h, ok := fromHelm[key]
				if !ok {
					t.Errorf("%s is rendered by kustomize but not by helm", key)
					continue
				}
				for _, d := range diff(key, normalize(k), normalize(h)) {
					t.Error(d)
				}
			}
			for key := range fromHelm {
				if _, ok := fromKustomize[key]; !ok {
					t.Errorf("%s is rendered by helm but not by kustomize", key)
				}
			}
		})
	}
}

// TestKustomizeBase builds the base on its own: it must carry no
// cluster-specific flag, so that an installation that forgets them fails at
// start-up instead of writing routes with someone else's cluster ID.
func TestKustomizeBase(t *testing.T) {
	kustomize := tool(t, "kustomize")
	objs := parseManifests(t, mustRun(t, kustomize, "build", "base"))
	want := []string{
		"ClusterRole/<nil>/vpc-route-publisher",
		"ClusterRoleBinding/<nil>/vpc-route-publisher",
		"Deployment/kube-system/vpc-route-publisher",
		"PodDisruptionBudget/kube-system/vpc-route-publisher",
		"Role/kube-system/vpc-route-publisher",
		"RoleBinding/kube-system/vpc-route-publisher",
		"Service/kube-system/vpc-route-publisher-metrics",
		"ServiceAccount/kube-system/vpc-route-publisher",
	}
	if got := slices.Sorted(maps.Keys(objs)); !slices.Equal(got, want) {
		t.Fatalf("base objects = %v, want %v", got, want)
	}
	d := decode[appsv1.Deployment](t, objs["Deployment/kube-system/vpc-route-publisher"])
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, []string{"run"}) {
		t.Errorf("the base's args are %q; its configuration belongs in the environment, which overlays patch by name", args)
	}
	flags := flagsOf(d)
	for _, f := range []string{"cluster-id", "cluster-cidr"} {
		if v, ok := flags[f]; ok {
			t.Errorf("the base sets --%s=%s; cluster-specific settings belong in an overlay", f, v)
		}
	}
}

// TestKustomizePatchesAreByName: the overlay and the components change the
// container's settings by name (strategic merge on the env, volume and
// mount names), never by position in a list, which breaks whenever the base
// gains a setting.
func TestKustomizePatchesAreByName(t *testing.T) {
	files, err := filepath.Glob("*/*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	paths := regexp.MustCompile(`(?m)^\s*path: (/spec/\S+)`)
	// A list position: /args/3, /env/-. The one container is named, not
	// counted, so containers/0 is allowed.
	position := regexp.MustCompile(`/([0-9]+|-)(/|$)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "kind: Deployment") {
			continue
		}
		n++
		for _, m := range paths.FindAllSubmatch(b, -1) {
			if p := strings.Replace(string(m[1]), "/containers/0/", "/containers/vpc-route-publisher/", 1); position.MatchString(p) {
				t.Errorf("%s patches the Deployment by list position (%s); patch by name with a strategic merge", f, m[1])
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d kustomizations patching the Deployment, want the example overlay and three components", n)
	}
}

// TestDeploymentHardening checks the properties the publisher's safety rests
// on in the rendered Deployment, so that a values change cannot quietly drop
// them.
func TestDeploymentHardening(t *testing.T) {
	helm := tool(t, "helm")
	out, err := helmTemplate(t, helm, "testdata/values-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Spec struct {
			Replicas int `json:"replicas"`
			Template struct {
				Spec struct {
					HostNetwork       bool   `json:"hostNetwork"`
					DNSPolicy         string `json:"dnsPolicy"`
					PriorityClassName string `json:"priorityClassName"`
					SecurityContext   struct {
						RunAsNonRoot   bool  `json:"runAsNonRoot"`
						RunAsUser      int64 `json:"runAsUser"`
						SeccompProfile struct {
							Type string `json:"type"`
						} `json:"seccompProfile"`
					} `json:"securityContext"`
					Affinity struct {
						PodAntiAffinity struct {
							Required []struct {
								TopologyKey string `json:"topologyKey"`
							} `json:"requiredDuringSchedulingIgnoredDuringExecution"`
						} `json:"podAntiAffinity"`
					} `json:"affinity"`
					Tolerations []struct {
						Key string `json:"key"`
					} `json:"tolerations"`
					Containers []struct {
						Env []struct {
							Name      string         `json:"name"`
							ValueFrom map[string]any `json:"valueFrom"`
						} `json:"env"`
						Resources struct {
							Requests map[string]string `json:"requests"`
							Limits   map[string]string `json:"limits"`
						} `json:"resources"`
						LivenessProbe, ReadinessProbe struct {
							HTTPGet struct {
								Path string `json:"path"`
								Port string `json:"port"`
							} `json:"httpGet"`
						}
						SecurityContext struct {
							AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
							ReadOnlyRootFilesystem   bool  `json:"readOnlyRootFilesystem"`
							Capabilities             struct {
								Drop []string `json:"drop"`
							} `json:"capabilities"`
						} `json:"securityContext"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	b, err := json.Marshal(parseManifests(t, out)["Deployment/kube-system/vpc-route-publisher"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	s := d.Spec.Template.Spec
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("deployment: %s", what)
		}
	}
	check("2 replicas", d.Spec.Replicas == 2)
	check("hostNetwork", s.HostNetwork)
	// The node's resolver: CoreDNS's pods need the routes the publisher
	// creates, so resolving through CoreDNS would deadlock a fresh cluster.
	check("dnsPolicy Default", s.DNSPolicy == "Default")
	check("priorityClassName system-cluster-critical", s.PriorityClassName == "system-cluster-critical")
	check("runAsNonRoot as 65532", s.SecurityContext.RunAsNonRoot && s.SecurityContext.RunAsUser == 65532)
	check("seccomp RuntimeDefault", s.SecurityContext.SeccompProfile.Type == "RuntimeDefault")
	check("anti-affinity per hostname", len(s.Affinity.PodAntiAffinity.Required) == 1 &&
		s.Affinity.PodAntiAffinity.Required[0].TopologyKey == "kubernetes.io/hostname")
	var taints []string
	for _, tol := range s.Tolerations {
		taints = append(taints, tol.Key)
	}
	for _, k := range []string{"node-role.kubernetes.io/control-plane", "node.cloudprovider.kubernetes.io/uninitialized", "node.kubernetes.io/network-unavailable"} {
		check("tolerates "+k, slices.Contains(taints, k))
	}
	if len(s.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(s.Containers))
	}
	c := s.Containers[0]
	check("no privilege escalation", c.SecurityContext.AllowPrivilegeEscalation != nil && !*c.SecurityContext.AllowPrivilegeEscalation)
	check("read-only root filesystem", c.SecurityContext.ReadOnlyRootFilesystem)
	check("drops ALL capabilities", slices.Equal(c.SecurityContext.Capabilities.Drop, []string{"ALL"}))
	check("requests and a memory limit", c.Resources.Requests["cpu"] != "" && c.Resources.Requests["memory"] != "" && c.Resources.Limits["memory"] != "")
	check("liveness on /healthz", c.LivenessProbe.HTTPGet.Path == "/healthz" && c.LivenessProbe.HTTPGet.Port == "health")
	check("readiness on /readyz", c.ReadinessProbe.HTTPGet.Path == "/readyz" && c.ReadinessProbe.HTTPGet.Port == "health")
	check("POD_NAMESPACE from the downward API", slices.ContainsFunc(c.Env, func(e struct {
		Name      string         `json:"name"`
		ValueFrom map[string]any `json:"valueFrom"`
	}) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom["fieldRef"] != nil
	}))
}

// TestHelmRejectsIncompleteValues names every configuration mistake the
// chart refuses to render.
func TestHelmRejectsIncompleteValues(t *testing.T) {
	helm := tool(t, "helm")
	for _, tc := range []struct {
		name string
		set  []string
		want string
		// skipSchema exercises the template's own checks, which guard
		// installations that skip values.schema.json.
		skipSchema bool
	}{
		{"no cluster ID", []string{"clusterID="}, "clusterID is required", false},
		{"no cluster CIDR", []string{"clusterCIDR=null"}, "clusterCIDR is required", false},
		{"misspelt top-level value", []string{"replicaCont=3"}, "additional properties 'replicaCont' not allowed", false},
		{"misspelt nested value", []string{"metrics.serviceMonitr.enabled=true"}, "at '/metrics': additional properties 'serviceMonitr' not allowed", false},
		{"misspelt credentials value", []string{"credentials.secret.nmae=x"}, "at '/credentials/secret': additional properties 'nmae' not allowed", false},
		{"CIDR that is no prefix", []string{"clusterCIDR={bogus}"}, "at '/clusterCIDR/0'", false},
		{"IPv4 prefix too long", []string{"clusterCIDR={172.20.0.0/33}"}, "at '/clusterCIDR/0'", false},
		{"whole IPv4 family", []string{"clusterCIDR={0.0.0.0/0}"}, "at '/clusterCIDR/0'", false},
		{"whole IPv6 family", []string{"clusterCIDR={::/0}"}, "at '/clusterCIDR/0'", false},
		{"CIDR that is no prefix, schema skipped", []string{"clusterCIDR={bogus}"}, `clusterCIDR: "bogus" is not an IPv4 or IPv6 prefix`, true},
		{"whole IPv6 family, schema skipped", []string{"clusterCIDR={::/0}"}, `clusterCIDR: "::/0" is not an IPv4 or IPv6 prefix of length 1 or more`, true},
		{"unknown DNS policy", []string{"dnsPolicy=Host"}, "at '/dnsPolicy'", false},
		{"RRSA webhook without role name", []string{"credentials.mode=rrsa", "credentials.rrsa.webhook=true"}, "credentials.rrsa.roleName is required", false},
		{"RRSA webhook without the chart's ServiceAccount", []string{"credentials.mode=rrsa", "credentials.rrsa.webhook=true", "credentials.rrsa.roleName=r", "serviceAccount.create=false"}, "needs serviceAccount.create=true", false},
		{"memory limit GOMEMLIMIT cannot follow", []string{"resources.limits.memory=1.5Gi"}, "GOMEMLIMIT can only be derived", false},
		// Caught by values.schema.json.
		{"unknown credentials mode", []string{"credentials.mode=keys"}, "at '/credentials/mode'", false},
		{"unknown cloud-config kind", []string{"credentials.mode=cloudConfig", "credentials.cloudConfig.kind=File"}, "at '/credentials/cloudConfig/kind'", false},
		{"unknown CIDR source", []string{"cidrSource=cilium"}, "at '/cidrSource'", false},
		{"delete ratio above 1", []string{"maxDeleteRatio=2"}, "at '/maxDeleteRatio'", false},
		{"duration without unit", []string{"resyncPeriod=300"}, "at '/resyncPeriod'", false},
		{"route table ID of another kind", []string{"cloud.routeTableIDs={vpc-123}"}, "at '/cloud/routeTableIDs/0'", false},
		{"cluster ID with a separator", []string{"clusterID=a;b"}, "at '/clusterID'", false},
		{"unknown credentials mode, schema skipped", []string{"credentials.mode=keys"}, "credentials.mode must be one of", true},
		{"unknown cloud-config kind, schema skipped", []string{"credentials.mode=cloudConfig", "credentials.cloudConfig.kind=File"}, "credentials.cloudConfig.kind must be", true},
		{"unknown CIDR source, schema skipped", []string{"cidrSource=cilium"}, "cidrSource must be one of", true},
		{"RRSA without role", []string{"credentials.mode=rrsa", "credentials.rrsa.oidcProviderARN=acs:ram::1:oidc-provider/p"}, "credentials.rrsa.roleARN is required", false},
		{"RRSA without OIDC provider", []string{"credentials.mode=rrsa", "credentials.rrsa.roleARN=acs:ram::1:role/r"}, "credentials.rrsa.oidcProviderARN is required", false},
		{"Secret to create without key", []string{"credentials.secret.create=true", "credentials.secret.accessKeySecret=s"}, "credentials.secret.accessKeyID is required", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
				"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			if tc.skipSchema {
				args = append(args, "--skip-schema-validation")
			}
			_, err := run(t, helm, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template with %v: error %v, want one containing %q", tc.set, err, tc.want)
			}
		})
	}
}

// TestHelmCreatesSecretAndRAMRoleMode covers the two modes kustomize does not
// have a component for.
func TestHelmCreatesSecretAndRAMRoleMode(t *testing.T) {
	helm := tool(t, "helm")
	out := mustRun(t, helm, "template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
		"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml",
		"--set", "credentials.secret.create=true", "--set", "credentials.secret.accessKeyID=LTAIexample",
		"--set", "credentials.secret.accessKeySecret=example-secret")
	secret := parseManifests(t, out)["Secret/kube-system/vpc-route-publisher-credentials"]
	data, _ := secret["data"].(map[string]any)
	if data["access-key-id"] != "TFRBSWV4YW1wbGU=" || data["access-key-secret"] != "ZXhhbXBsZS1zZWNyZXQ=" {
		t.Errorf("created Secret data = %v, want the base64 of the two values", data)
	}

	out = mustRun(t, helm, "template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
		"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml",
		"--set", "credentials.mode=ramRole", "--set", "credentials.ramRole.name=KubernetesWorkerRole")
	objs := parseManifests(t, out)
	flags := flagsOf(decode[appsv1.Deployment](t, objs["Deployment/kube-system/vpc-route-publisher"]))
	_, dir := flags["credentials-dir"]
	_, cloudConfig := flags["cloud-config"]
	if flags["ram-role"] != "KubernetesWorkerRole" || flags["credential-source"] != "ecs-ram-role" || dir || cloudConfig {
		t.Errorf("ramRole mode flags = %v, want --ram-role and no other credential source", flags)
	}
	if _, ok := objs["Secret/kube-system/vpc-route-publisher-credentials"]; ok {
		t.Error("ramRole mode renders a Secret")
	}
}

// calicoGrants are the read-only grants on Calico IPAM, in both API groups.
func calicoGrants() []string {
	var g []string
	for group, resources := range map[string][]string{
		"crd.projectcalico.org": {"blockaffinities", "ippools", "ipamblocks", "ipamconfigs"},
		"projectcalico.org":     {"blockaffinities", "ippools", "ipamblocks", "ipamconfigurations"},
	} {
		for _, r := range resources {
			for _, verb := range []string{"get", "list", "watch"} {
				g = append(g, fmt.Sprintf("%s/%s %s []", group, r, verb))
			}
		}
	}
	return g
}

// TestHelmGrantsCalicoOnlyWhenRead: the chart grants read access to
// Calico's IPAM only in the modes that read it (auto and calico).
func TestHelmGrantsCalicoOnlyWhenRead(t *testing.T) {
	helm := tool(t, "helm")
	for source, want := range map[string]bool{"auto": true, "calico": true, "nodes": false, "spiderpool": false} {
		out := mustRun(t, helm, "template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
			"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml", "--set", "cidrSource="+source)
		role := parseManifests(t, out)["ClusterRole/<nil>/vpc-route-publisher"]
		b, err := json.Marshal(role)
		if err != nil {
			t.Fatal(err)
		}
		for _, group := range []string{`"crd.projectcalico.org"`, `"projectcalico.org"`} {
			if got := strings.Contains(string(b), group); got != want {
				t.Errorf("cidrSource=%s: ClusterRole grants %s: %v, want %v", source, group, got, want)
			}
		}
	}
}

// TestRBACIsLeastPrivilege checks the rendered RBAC against the exact needs
// of the publisher: no wildcard, no Secrets, nothing beyond the list.
func TestRBACIsLeastPrivilege(t *testing.T) {
	kustomize := tool(t, "kustomize")
	objs := parseManifests(t, mustRun(t, kustomize, "build", "base"))
	type rule struct {
		APIGroups     []string `json:"apiGroups"`
		Resources     []string `json:"resources"`
		ResourceNames []string `json:"resourceNames"`
		Verbs         []string `json:"verbs"`
	}
	grants := func(key string) map[string]bool {
		var r struct {
			Rules []rule `json:"rules"`
		}
		b, err := json.Marshal(objs[key])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Rules) == 0 {
			t.Fatalf("%s has no rules", key)
		}
		g := map[string]bool{}
		for _, ru := range r.Rules {
			for _, group := range ru.APIGroups {
				for _, res := range ru.Resources {
					for _, verb := range ru.Verbs {
						g[fmt.Sprintf("%s/%s %s %v", group, res, verb, ru.ResourceNames)] = true
					}
				}
			}
		}
		return g
	}
	want := map[string][]string{
		"ClusterRole/<nil>/vpc-route-publisher": append([]string{
			"/nodes get []", "/nodes list []", "/nodes watch []",
			"/nodes/status patch []",
			"/events create []", "/events patch []",
			"events.k8s.io/events create []", "events.k8s.io/events patch []",
			"spiderpool.spidernet.io/spiderippools get []", "spiderpool.spidernet.io/spiderippools list []", "spiderpool.spidernet.io/spiderippools watch []",
			"apiextensions.k8s.io/customresourcedefinitions get []", "apiextensions.k8s.io/customresourcedefinitions list []", "apiextensions.k8s.io/customresourcedefinitions watch []",
		}, calicoGrants()...),
		"Role/kube-system/vpc-route-publisher": {
			"coordination.k8s.io/leases create []",
			"coordination.k8s.io/leases get [vpc-route-publisher]", "coordination.k8s.io/leases update [vpc-route-publisher]",
		},
	}
	for key, w := range want {
		got := slices.Sorted(maps.Keys(grants(key)))
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s grants\n  %v\nwant\n  %v", key, got, w)
		}
		for _, g := range got {
			if strings.Contains(g, "*") || strings.Contains(g, "secrets") {
				t.Errorf("%s grants %s", key, g)
			}
		}
	}
}

// TestRAMPolicy checks that the RAM policy and its scoped variant grant
// exactly the VPC and ECS actions the publisher calls (cloud.RAMActions),
// each once, and that the variant
// grants the writes on route-table ARNs only.
func TestRAMPolicy(t *testing.T) {
	want := cloud.RAMActions()
	if len(want) < 9 {
		t.Fatalf("cloud.RAMActions() = %v", want)
	}
	writes := map[string]bool{"vpc:CreateRouteEntries": true, "vpc:DeleteRouteEntries": true, "vpc:ModifyRouteEntry": true}
	for _, file := range []string{"ram-policy.json", "ram-policy-scoped.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Version   string
			Statement []struct {
				Effect   string
				Action   []string
				Resource any
			}
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var actions []string
		for _, s := range p.Statement {
			if s.Effect != "Allow" {
				t.Errorf("%s: statement with effect %q, want only Allow", file, s.Effect)
			}
			actions = append(actions, s.Action...)
			if file != "ram-policy-scoped.json" {
				continue
			}
			resources, _ := s.Resource.([]any)
			for _, a := range s.Action {
				switch {
				case writes[a] && len(resources) == 0:
					t.Errorf("%s: %s is granted on %v, want route-table ARNs", file, a, s.Resource)
				case writes[a]:
					for _, r := range resources {
						if r, _ := r.(string); !strings.HasPrefix(r, "acs:vpc:") || !strings.Contains(r, ":routetable/vtb-") {
							t.Errorf("%s: %s is granted on %q, want a route-table ARN", file, a, r)
						}
					}
				}
			}
		}
		slices.Sort(actions)
		if p.Version != "1" || !slices.Equal(actions, want) {
			t.Errorf("%s: version %q actions %v, want version 1 and %v", file, p.Version, actions, want)
		}
	}
}

// TestRuleCopies checks that the chart and the kustomize component carry the
// rules promtool tests, and the same dashboard. With -update it rewrites the
// copies from the sources instead.
func TestRuleCopies(t *testing.T) {
	for _, c := range byteCopies {
		src, err := os.ReadFile(c[0])
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(c[1], src, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		cp, err := os.ReadFile(c[1])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(src, cp) {
			t.Errorf("%s differs from its source %s; run `go test ./deploy -run TestRuleCopies -update`", c[1], c[0])
		}
	}

	src, err := os.ReadFile(rulesSource)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		_, groups, ok := strings.Cut(string(src), "\ngroups:")
		if !ok {
			t.Fatalf("%s has no groups", rulesSource)
		}
		var b strings.Builder
		b.WriteString(prometheusRuleHeadr + "  groups:")
		for line := range strings.SplitAfterSeq(groups, "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(line)
				continue
			}
			b.WriteString("  " + line)
		}
		if err := os.WriteFile(prometheusRuleCopy, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var rules, cr map[string]any
	if err := yaml.Unmarshal(src, &rules); err != nil {
		t.Fatalf("%s: %v", rulesSource, err)
	}
	crBytes, err := os.ReadFile(prometheusRuleCopy)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(crBytes, &cr); err != nil {
		t.Fatalf("%s: %v", prometheusRuleCopy, err)
	}
	if !reflect.DeepEqual(rules, cr["spec"]) {
		t.Errorf("the spec of %s differs from %s; run `go test ./deploy -run TestRuleCopies -update`", prometheusRuleCopy, rulesSource)
	}
}

// TestEveryAlertHasARunbookAndATest checks that each alert links to its own
// anchor of docs/runbooks.md and is exercised by the promtool tests.
func TestEveryAlertHasARunbookAndATest(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	src, err := os.ReadFile(rulesSource)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(src, &rules); err != nil {
		t.Fatal(err)
	}
	runbooks, err := os.ReadFile("../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := filepath.Glob("prometheus/tests/*.yaml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no promtool tests in prometheus/tests: %v", err)
	}
	var testText []byte
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		testText = append(testText, b...)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			anchor := strings.ToLower(r.Alert)
			if want := "docs/runbooks.md#" + anchor; !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("%s: runbook_url %q, want one ending in %s", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !regexp.MustCompile(`(?m)^#+ ` + regexp.QuoteMeta(r.Alert) + `\s*$`).Match(runbooks) {
				t.Errorf("%s: docs/runbooks.md has no heading %q (anchor #%s)", r.Alert, r.Alert, anchor)
			}
			if c := bytes.Count(testText, []byte("alertname: "+r.Alert+"\n")); c < 2 {
				t.Errorf("%s: %d promtool test cases, want at least one that fires and one that does not", r.Alert, c)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alerts in " + rulesSource)
	}
}

// TestPrometheusRules runs promtool's syntax check and its unit tests.
func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool")
	mustRun(t, promtool, "check", "rules", rulesSource, "helm/vpc-route-publisher/files/rules.yaml")
	tests, err := filepath.Glob("prometheus/tests/*.yaml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no promtool tests in prometheus/tests: %v", err)
	}
	mustRun(t, promtool, append([]string{"test", "rules"}, tests...)...)
}

// TestHelmLint runs helm lint in strict mode with the example values.
func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm")
	mustRun(t, helm, "lint", "--strict", "helm/vpc-route-publisher", "--values", "testdata/values-example.yaml")
}

// TestDashboard checks the dashboard is valid JSON whose queries only use
// metrics of the publisher's metrics reference.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(byteCopies[1][0])
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`vpc_route_publisher_[a-z_]+`)
	seen := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range metric.FindAllString(q.Expr, -1) {
				seen[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	for m := range seen {
		if !bytes.Contains(readme, []byte("`"+m+"`")) {
			t.Errorf("dashboard queries %s, which the README's metrics reference does not list", m)
		}
	}
	if len(seen) < 10 {
		t.Errorf("dashboard uses only %d metrics", len(seen))
	}
}

// typed returns an empty typed object for the kinds whose schema is known
// here, so that rendered objects can be decoded strictly: a misspelt or
// misplaced field fails the test instead of being dropped by the API server.
func typed(kind string) any {
	switch kind {
	case "Deployment":
		return &appsv1.Deployment{}
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "Service":
		return &corev1.Service{}
	case "ServiceAccount":
		return &corev1.ServiceAccount{}
	case "ConfigMap":
		return &corev1.ConfigMap{}
	case "Secret":
		return &corev1.Secret{}
	case "ClusterRole":
		return &rbacv1.ClusterRole{}
	case "ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "Role":
		return &rbacv1.Role{}
	case "RoleBinding":
		return &rbacv1.RoleBinding{}
	}
	return nil
}

// TestRenderedObjectsDecodeStrictly decodes every rendered core object into
// its Kubernetes type with unknown fields disallowed.
func TestRenderedObjectsDecodeStrictly(t *testing.T) {
	helm := tool(t, "helm")
	out, err := helmTemplate(t, helm, "testdata/values-example.yaml", "testdata/values-monitoring.yaml",
		"testdata/values-rrsa.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := parseManifests(t, out)
	for _, mode := range []string{"secret", "cloudConfig", "ramRole"} {
		out, err := helmTemplate(t, helm, "testdata/values-example.yaml")
		if mode != "secret" {
			out, err = run(t, helm, "template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
				"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml", "--set", "credentials.mode="+mode,
				"--set", "credentials.cloudConfig.kind=Secret")
		}
		if err != nil {
			t.Fatal(err)
		}
		for k, o := range parseManifests(t, out) {
			objs[mode+":"+k] = o
		}
	}
	checked := 0
	for key, o := range objs {
		target := typed(fmt.Sprint(o["kind"]))
		if target == nil {
			continue
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("decoded only %d objects", checked)
	}
}
