{{/*
Object names are fixed: the Lease, the RBAC objects and the docs all use
"vpc-route-publisher", and there is one publisher per cluster.
*/}}
{{- define "vrp.name" -}}vpc-route-publisher{{- end -}}

{{- define "vrp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vrp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vrp.labels" -}}
{{ include "vrp.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "vrp.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.resourceNamespace -}}
{{- end -}}

{{- define "vrp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Mount points of the credential sources. */}}
{{- define "vrp.credentialsDir" -}}/etc/vpc-route-publisher/credentials{{- end -}}
{{- define "vrp.cloudConfigDir" -}}/etc/kubernetes/cloud-config{{- end -}}
{{- define "vrp.rrsaTokenDir" -}}/var/run/secrets/ack.alibabacloud.com/rrsa-tokens{{- end -}}

{{- define "vrp.validate" -}}
{{- if not (has .Values.credentials.mode (list "secret" "cloudConfig" "rrsa" "ramRole")) -}}
{{- fail (printf "credentials.mode must be one of secret, cloudConfig, rrsa, ramRole; got %q" .Values.credentials.mode) -}}
{{- end -}}
{{- if not (has .Values.credentials.cloudConfig.kind (list "ConfigMap" "Secret")) -}}
{{- fail (printf "credentials.cloudConfig.kind must be ConfigMap or Secret; got %q" .Values.credentials.cloudConfig.kind) -}}
{{- end -}}
{{- if not (has .Values.cidrSource (list "auto" "nodes" "spiderpool")) -}}
{{- fail (printf "cidrSource must be one of auto, nodes, spiderpool; got %q" .Values.cidrSource) -}}
{{- end -}}
{{- if not .Values.clusterCIDR -}}
{{- fail "clusterCIDR is required: the cluster's pod CIDRs, e.g. --set clusterCIDR={172.20.0.0/16}" -}}
{{- end -}}
{{- end -}}
