package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// ruleFiles is the rule_files list of a promtool test file.
var ruleFiles = regexp.MustCompile(`(?m)^rule_files:\n(?:- .*\n)+`)

// renderedRuleGroups renders the chart's PrometheusRule with the given
// values files and returns its spec, the rule groups.
func renderedRuleGroups(t *testing.T, helm string, values ...string) map[string]any {
	t.Helper()
	out, err := helmTemplate(t, helm, append([]string{"testdata/values-example.yaml"}, values...)...)
	if err != nil {
		t.Fatal(err)
	}
	pr, ok := parseManifests(t, out)["PrometheusRule/kube-system/vpc-route-publisher"]
	if !ok {
		t.Fatalf("values %v render no PrometheusRule", values)
	}
	spec, _ := pr["spec"].(map[string]any)
	return spec
}

// alertNames lists the alerts of rule groups.
func alertNames(t *testing.T, groups map[string]any) []string {
	t.Helper()
	var spec struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	b, err := json.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	slices.Sort(names)
	return names
}

// TestPromtoolOnChartRenderedRules runs promtool on the rules as the chart
// renders them, the ones Prometheus gets: with the default values, the
// unit tests of the rules as written (prometheus/tests) must pass on them
// unchanged; with non-default values (testdata/values-rules.yaml: another
// resync period, a disabled alert, extra labels), the tests of
// prometheus/chart-tests must. The kustomize component renders the default
// (TestHelmAndKustomizeRenderTheSameObjects).
func TestPromtoolOnChartRenderedRules(t *testing.T) {
	helm, promtool := tool(t, "helm"), tool(t, "promtool")
	source, err := os.ReadFile(rulesSource)
	if err != nil {
		t.Fatal(err)
	}
	var sourceGroups map[string]any
	if err := yaml.Unmarshal(source, &sourceGroups); err != nil {
		t.Fatal(err)
	}
	all := alertNames(t, sourceGroups)
	for _, tc := range []struct {
		name   string
		values []string
		tests  string
		absent []string
	}{
		{name: "default values", values: []string{"testdata/values-monitoring.yaml"}, tests: "prometheus/tests/*.yaml"},
		{name: "non-default values", values: []string{"testdata/values-rules.yaml"}, tests: "prometheus/chart-tests/*.yaml", absent: []string{"VPCRoutePublisherCloudThrottled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups := renderedRuleGroups(t, helm, tc.values...)
			want := slices.DeleteFunc(slices.Clone(all), func(a string) bool { return slices.Contains(tc.absent, a) })
			if got := alertNames(t, groups); !slices.Equal(got, want) {
				t.Errorf("the chart renders the alerts %v, want %v", got, want)
			}
			dir := t.TempDir()
			b, err := yaml.Marshal(groups)
			if err != nil {
				t.Fatal(err)
			}
			rules := filepath.Join(dir, "rendered-rules.yaml")
			if err := os.WriteFile(rules, b, 0o600); err != nil {
				t.Fatal(err)
			}
			mustRun(t, promtool, "check", "rules", rules)
			tests, err := filepath.Glob(tc.tests)
			if err != nil || len(tests) == 0 {
				t.Fatalf("no promtool tests in %s: %v", tc.tests, err)
			}
			args := []string{"test", "rules"}
			for _, f := range tests {
				text, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if !ruleFiles.Match(text) {
					t.Fatalf("%s has no rule_files list", f)
				}
				text = ruleFiles.ReplaceAll(text, []byte("rule_files:\n- rendered-rules.yaml\n"))
				copied := filepath.Join(dir, filepath.Base(f))
				if err := os.WriteFile(copied, text, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, copied)
			}
			mustRun(t, promtool, args...)
		})
	}
}
