package deploy

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// helmSet renders the chart with the example values plus --set pairs
// (--set-json for those prefixed "json:", since --set reads 0.5 as a string).
func helmSet(t *testing.T, set ...string) map[string]object {
	t.Helper()
	helm := tool(t, "helm")
	args := []string{"template", "vpc-route-publisher", "helm/vpc-route-publisher", "--namespace", "kube-system",
		"--kube-version", kubeVersion, "--values", "testdata/values-example.yaml"}
	for _, s := range set {
		if j, ok := strings.CutPrefix(s, "json:"); ok {
			args = append(args, "--set-json", j)
			continue
		}
		args = append(args, "--set", s)
	}
	return parseManifests(t, mustRun(t, helm, args...))
}

// decode converts a parsed object into a typed one.
func decode[T any](t *testing.T, o object) *T {
	t.Helper()
	if o == nil {
		t.Fatal("object not rendered")
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func deployment(t *testing.T, objs map[string]object) *appsv1.Deployment {
	t.Helper()
	return decode[appsv1.Deployment](t, objs["Deployment/kube-system/vpc-route-publisher"])
}

// flagsOf returns the flags of run the container's environment sets, by
// flag name: VPC_ROUTE_PUBLISHER_CLUSTER_CIDR is --cluster-cidr.
func flagsOf(d *appsv1.Deployment) map[string]string {
	flags := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if name, ok := strings.CutPrefix(e.Name, "VPC_ROUTE_PUBLISHER_"); ok {
			flags[strings.ToLower(strings.ReplaceAll(name, "_", "-"))] = e.Value
		}
	}
	return flags
}

func envOf(d *appsv1.Deployment) map[string]corev1.EnvVar {
	env := map[string]corev1.EnvVar{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	return env
}

// TestSchemaRejectsUnknownKeysAtEveryLevel walks values.schema.json: every
// object schema that lists its properties must forbid others, so that a
// misspelt key anywhere fails the install. Free-form objects (Kubernetes
// types passed through, label maps) list no properties.
func TestSchemaRejectsUnknownKeysAtEveryLevel(t *testing.T) {
	b, err := os.ReadFile("helm/vpc-route-publisher/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return
		}
		n++
		if s["additionalProperties"] != false {
			t.Errorf("schema %s lists properties but allows others (additionalProperties: %v)", path, s["additionalProperties"])
		}
		for k, v := range props {
			if sub, ok := v.(map[string]any); ok {
				walk(path+"/"+k, sub)
			}
		}
	}
	walk("", schema)
	if n < 15 {
		t.Fatalf("only %d object schemas with properties", n)
	}

	// Every value of values.yaml is in the schema, or the defaults would
	// fail their own schema: rendering the defaults proves it, which
	// TestHelmLint and the render tests do.
}

// TestPodDisruptionBudgetNeverBlocksDrains: no budget for one replica, and
// with more, unhealthy pods stay evictable.
func TestPodDisruptionBudgetNeverBlocksDrains(t *testing.T) {
	const key = "PodDisruptionBudget/kube-system/vpc-route-publisher"
	if _, ok := helmSet(t, "replicaCount=1")[key]; ok {
		t.Error("replicaCount=1 renders a PodDisruptionBudget, which can only block node drains")
	}
	pdb := decode[policyv1.PodDisruptionBudget](t, helmSet(t)[key])
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("budget maxUnavailable %v minAvailable %v, want maxUnavailable 1 only", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
		t.Errorf("unhealthyPodEvictionPolicy %v, want AlwaysAllow", p)
	}
}

// TestGoMemLimitFollowsTheMemoryLimit checks GOMEMLIMIT is 90% of the
// memory limit, whatever unit the limit is written in.
func TestGoMemLimitFollowsTheMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		set  []string
		want string // "" = no GOMEMLIMIT
	}{
		{nil, "230MiB"},
		{[]string{"resources.limits.memory=1Gi"}, "921MiB"},
		{[]string{"resources.limits.memory=512M"}, "439MiB"},
		{[]string{"resources.limits.memory=268435456"}, "230MiB"},
		{[]string{"json:goMemLimitRatio=0.5"}, "128MiB"},
		{[]string{"goMemLimitRatio=0"}, ""},
		{[]string{"resources.limits=null"}, ""},
	} {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			env := envOf(deployment(t, helmSet(t, tc.set...)))
			got, ok := env["GOMEMLIMIT"]
			switch {
			case tc.want == "" && ok:
				t.Errorf("GOMEMLIMIT %q, want none", got.Value)
			case tc.want != "" && got.Value != tc.want:
				t.Errorf("GOMEMLIMIT %q, want %q", got.Value, tc.want)
			}
		})
	}
}

// TestChartValuesOperatorsExpect renders the values operators know from
// other charts and checks each lands where it should.
func TestChartValuesOperatorsExpect(t *testing.T) {
	t.Run("serviceAccount.create=false uses the named account", func(t *testing.T) {
		objs := helmSet(t, "serviceAccount.create=false", "serviceAccount.name=existing")
		if _, ok := objs["ServiceAccount/kube-system/existing"]; ok {
			t.Error("a ServiceAccount is rendered")
		}
		if _, ok := objs["ServiceAccount/kube-system/vpc-route-publisher"]; ok {
			t.Error("the default ServiceAccount is rendered")
		}
		if sa := deployment(t, objs).Spec.Template.Spec.ServiceAccountName; sa != "existing" {
			t.Errorf("serviceAccountName %q", sa)
		}
		for _, key := range []string{"ClusterRoleBinding/<nil>/vpc-route-publisher", "RoleBinding/kube-system/vpc-route-publisher"} {
			if !strings.Contains(compact(objs[key]["subjects"]), `"name":"existing"`) {
				t.Errorf("%s subjects %s, want the ServiceAccount existing", key, compact(objs[key]["subjects"]))
			}
		}
	})
	t.Run("commonLabels on every object", func(t *testing.T) {
		objs := helmSet(t, "commonLabels.team=network", "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true")
		for key, o := range objs {
			labels, _ := o["metadata"].(map[string]any)["labels"].(map[string]any)
			if labels["team"] != "network" {
				t.Errorf("%s has labels %v, want team=network", key, labels)
			}
		}
	})
	t.Run("tolerations replaced, then extended", func(t *testing.T) {
		d := deployment(t, helmSet(t, "tolerations[0].key=only", "tolerations[0].operator=Exists", "extraTolerations[0].key=extra", "extraTolerations[0].operator=Exists"))
		var keys []string
		for _, tol := range d.Spec.Template.Spec.Tolerations {
			keys = append(keys, tol.Key)
		}
		if !slices.Equal(keys, []string{"only", "extra"}) {
			t.Errorf("tolerations %v, want [only extra]", keys)
		}
	})
	t.Run("extra volumes, mounts, env and args", func(t *testing.T) {
		d := deployment(t, helmSet(t, "extraVolumes[0].name=ca", "extraVolumes[0].configMap.name=ca",
			"extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/etc/ca",
			"extraEnv[0].name=HTTPS_PROXY", "extraEnv[0].value=http://127.0.0.1:3128", "extraArgs[0]=--v=4"))
		spec := d.Spec.Template.Spec
		c := spec.Containers[0]
		if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "ca" }) ||
			!slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "credentials" }) {
			t.Errorf("volumes %v, want credentials and ca", spec.Volumes)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "ca" && m.MountPath == "/etc/ca" }) {
			t.Errorf("mounts %v, want ca", c.VolumeMounts)
		}
		if envOf(d)["HTTPS_PROXY"].Value != "http://127.0.0.1:3128" || c.Args[len(c.Args)-1] != "--v=4" {
			t.Errorf("env %v args %v", c.Env, c.Args)
		}
		d = deployment(t, helmSet(t, "credentials.mode=ramRole", "extraVolumes[0].name=ca", "extraVolumes[0].emptyDir.medium=Memory",
			"extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/etc/ca"))
		if len(d.Spec.Template.Spec.Volumes) != 1 || len(d.Spec.Template.Spec.Containers[0].VolumeMounts) != 1 {
			t.Errorf("ramRole mode: volumes %v mounts %v, want the extra ones only", d.Spec.Template.Spec.Volumes, d.Spec.Template.Spec.Containers[0].VolumeMounts)
		}
	})
	t.Run("security contexts, affinity, topology spread are values", func(t *testing.T) {
		d := deployment(t, helmSet(t, "podSecurityContext.runAsUser=1000", "securityContext.readOnlyRootFilesystem=false",
			"affinity=null", "topologySpreadConstraints=null", "dnsPolicy=ClusterFirstWithHostNet"))
		spec := d.Spec.Template.Spec
		if *spec.SecurityContext.RunAsUser != 1000 || *spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("security contexts %+v %+v", spec.SecurityContext, spec.Containers[0].SecurityContext)
		}
		if spec.Affinity != nil || spec.TopologySpreadConstraints != nil || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
			t.Errorf("affinity %v spread %v dnsPolicy %s", spec.Affinity, spec.TopologySpreadConstraints, spec.DNSPolicy)
		}
		spec = deployment(t, helmSet(t)).Spec.Template.Spec
		if len(spec.TopologySpreadConstraints) != 1 || spec.TopologySpreadConstraints[0].TopologyKey != "topology.kubernetes.io/zone" ||
			spec.TopologySpreadConstraints[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
			t.Errorf("default topology spread %v, want across zones when possible", spec.TopologySpreadConstraints)
		}
	})
	t.Run("ServiceMonitor relabelings and dashboard folder", func(t *testing.T) {
		objs := helmSet(t, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=1m",
			"metrics.serviceMonitor.relabelings[0].targetLabel=cluster", "metrics.serviceMonitor.relabelings[0].replacement=prod",
			"metrics.serviceMonitor.metricRelabelings[0].action=drop", "metrics.serviceMonitor.metricRelabelings[0].regex=go_.*",
			"metrics.dashboard.enabled=true")
		ep := compact(objs["ServiceMonitor/kube-system/vpc-route-publisher"]["spec"])
		for _, want := range []string{`"interval":"1m"`, `"relabelings":[{"replacement":"prod","targetLabel":"cluster"}]`, `"metricRelabelings":[{"action":"drop","regex":"go_.*"}]`} {
			if !strings.Contains(ep, want) {
				t.Errorf("ServiceMonitor spec %s, want %s", ep, want)
			}
		}
		meta := objs["ConfigMap/kube-system/vpc-route-publisher-dashboard"]["metadata"].(map[string]any)
		if a, _ := meta["annotations"].(map[string]any); a["grafana_folder"] != "Networking" {
			t.Errorf("dashboard annotations %v, want grafana_folder", a)
		}
		if l, _ := meta["labels"].(map[string]any); l["grafana_dashboard"] != "1" {
			t.Errorf("dashboard labels %v, want grafana_dashboard", l)
		}
	})
	t.Run("bind to the node IP", func(t *testing.T) {
		d := deployment(t, helmSet(t, "bindToNodeIP=true"))
		env := envOf(d)
		if f := env["HOST_IP"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "status.hostIP" {
			t.Errorf("HOST_IP %+v, want status.hostIP", env["HOST_IP"])
		}
		flags := flagsOf(d)
		if flags["metrics-bind-address"] != "$(HOST_IP):10290" || flags["health-bind-address"] != "$(HOST_IP):10291" {
			t.Errorf("bind addresses %q and %q, want $(HOST_IP):10290 and $(HOST_IP):10291", flags["metrics-bind-address"], flags["health-bind-address"])
		}
		// The kubelet expands $(HOST_IP) only from variables defined before.
		names := make([]string, 0, len(d.Spec.Template.Spec.Containers[0].Env))
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			names = append(names, e.Name)
		}
		if h, m := slices.Index(names, "HOST_IP"), slices.Index(names, "VPC_ROUTE_PUBLISHER_METRICS_BIND_ADDRESS"); h < 0 || h > m {
			t.Errorf("env order %v: HOST_IP must come before the bind addresses", names)
		}
	})
	t.Run("RRSA through the ack-pod-identity-webhook", func(t *testing.T) {
		objs := helmSet(t, "credentials.mode=rrsa", "credentials.rrsa.webhook=true", "credentials.rrsa.roleName=vrp-role",
			"serviceAccount.annotations.team=network")
		sa := decode[corev1.ServiceAccount](t, objs["ServiceAccount/kube-system/vpc-route-publisher"])
		if sa.Annotations["pod-identity.alibabacloud.com/role-name"] != "vrp-role" || sa.Annotations["team"] != "network" {
			t.Errorf("ServiceAccount annotations %v", sa.Annotations)
		}
		d := deployment(t, objs)
		env := envOf(d)
		for _, n := range []string{"ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"} {
			if _, ok := env[n]; ok {
				t.Errorf("%s is set by the chart; the webhook injects it", n)
			}
		}
		if len(d.Spec.Template.Spec.Volumes) != 0 || flagsOf(d)["credential-source"] != "rrsa" {
			t.Errorf("volumes %v env %v, want no volume and --credential-source=rrsa", d.Spec.Template.Spec.Volumes, d.Spec.Template.Spec.Containers[0].Env)
		}
	})
}

// TestCredentialsSecretNeverBlocksThePod: the Secret volume is optional, so
// a missing Secret shows in /readyz and the logs instead of a pod stuck in
// ContainerCreating; each mode names its one credential source.
func TestCredentialsSecretNeverBlocksThePod(t *testing.T) {
	d := deployment(t, helmSet(t))
	var found bool
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			found = true
			if v.Secret.Optional == nil || !*v.Secret.Optional {
				t.Errorf("Secret volume %s is not optional", v.Name)
			}
		}
	}
	if !found {
		t.Fatal("no Secret volume in secret mode")
	}
	for mode, want := range map[string]string{"secret": "credentials-dir", "cloudConfig": "cloud-config", "ramRole": "ecs-ram-role"} {
		d := deployment(t, helmSet(t, "credentials.mode="+mode))
		if got := flagsOf(d)["credential-source"]; got != want {
			t.Errorf("credentials.mode=%s: --credential-source=%s, want %s", mode, got, want)
		}
	}
}

// TestChartReadmeIsCurrent regenerates the chart's README with helm-docs and
// compares it with the committed one (make chart-docs rewrites it).
func TestChartReadmeIsCurrent(t *testing.T) {
	helmDocs := tool(t, "helm-docs")
	out := mustRun(t, helmDocs, "--chart-search-root", "helm", "--skip-version-footer", "--sort-values-order", "file", "--log-level", "warning", "--dry-run")
	committed, err := os.ReadFile("helm/vpc-route-publisher/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(committed) {
		t.Error("helm/vpc-route-publisher/README.md is stale: run make chart-docs")
	}
}

// TestPrometheusRuleValues: SyncStale's threshold is three resync periods,
// and alerts can be disabled or given labels, as in kube-prometheus-stack.
func TestPrometheusRuleValues(t *testing.T) {
	objs := helmSet(t, "metrics.prometheusRule.enabled=true", "resyncPeriod=1h10m",
		"metrics.prometheusRule.disabled.VPCRoutePublisherCloudThrottled=true",
		"metrics.prometheusRule.additionalRuleLabels.team=network",
		"metrics.prometheusRule.additionalRuleLabels.severity=ignored",
		"metrics.prometheusRule.ruleLabels.VPCRoutePublisherNoLeader.page=now")
	var spec struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `json:"alert"`
				Expr   string            `json:"expr"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	b, err := json.Marshal(objs["PrometheusRule/kube-system/vpc-route-publisher"]["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			if r.Labels["team"] != "network" || r.Labels["severity"] == "ignored" || r.Labels["severity"] == "" {
				t.Errorf("%s labels %v, want team=network added and its own severity kept", r.Alert, r.Labels)
			}
			if (r.Labels["page"] == "now") != (r.Alert == "VPCRoutePublisherNoLeader") {
				t.Errorf("%s labels %v: page=now belongs to VPCRoutePublisherNoLeader only", r.Alert, r.Labels)
			}
			if r.Alert == "VPCRoutePublisherSyncStale" && !strings.HasSuffix(strings.TrimSpace(r.Expr), "> 12600") {
				t.Errorf("SyncStale expr %q, want a threshold of 3 x 1h10m = 12600 s", r.Expr)
			}
		}
	}
	if seen["VPCRoutePublisherCloudThrottled"] || !seen["VPCRoutePublisherSyncStale"] || len(seen) < 10 {
		t.Errorf("alerts rendered %v, want all but VPCRoutePublisherCloudThrottled", seen)
	}
}
