// Package deploy holds the deployment artefacts of vpc-route-publisher: a
// kustomize base with components, a Helm chart, the Prometheus alerting rules
// and their unit tests, a Grafana dashboard and the RAM policy.
//
// It has no Go code of its own. Its tests render the manifests with the
// pinned helm and kustomize binaries of bin/ and fail when the two ways of
// installing the publisher drift apart, and run promtool on the rules.
package deploy
