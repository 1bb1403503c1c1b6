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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "vrp.serviceAccountName" -}}{{ .Values.serviceAccount.name }}{{- end -}}

{{/*
vrp.goMemLimit renders GOMEMLIMIT as goMemLimitRatio of
resources.limits.memory, in MiB (empty without a limit or ratio). Quantities
with a binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix or in bytes are
understood; anything else fails the render.
*/}}
{{- define "vrp.goMemLimit" -}}
{{- $limit := "" -}}
{{- with .Values.resources }}{{ with .limits }}{{ $limit = toString (default "" .memory) }}{{ end }}{{ end -}}
{{- if and $limit .Values.goMemLimitRatio -}}
{{- $m := regexFindAll "^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$" $limit -1 -}}
{{- if not $m -}}
{{- fail (printf "resources.limits.memory %q: GOMEMLIMIT can only be derived from an integer quantity such as 256Mi, 1Gi or 268435456; set goMemLimitRatio=0 and GOMEMLIMIT in extraEnv instead" $limit) -}}
{{- end -}}
{{- $num := int64 (regexReplaceAll "[^0-9]" $limit "") -}}
{{- $unit := regexReplaceAll "^[0-9]+" $limit "" -}}
{{- $mult := get (dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000) $unit -}}
{{- $bytes := mul $num $mult -}}
{{- printf "%dMiB" (int64 (floor (divf (mulf $bytes .Values.goMemLimitRatio) 1048576))) -}}
{{- end -}}
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
{{- if not (has .Values.cidrSource (list "auto" "nodes" "spiderpool" "calico")) -}}
{{- fail (printf "cidrSource must be one of auto, nodes, spiderpool, calico; got %q" .Values.cidrSource) -}}
{{- end -}}
{{- if not .Values.clusterCIDR -}}
{{- fail "clusterCIDR is required: the cluster's pod CIDRs, e.g. --set clusterCIDR={172.20.0.0/16}" -}}
{{- end -}}
{{- range .Values.clusterCIDR -}}
{{- if not (regexMatch "^([0-9]{1,3}\\.){3}[0-9]{1,3}/([1-9]|[12][0-9]|3[0-2])$|^[0-9a-fA-F]*:[0-9a-fA-F:.]*/([1-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$" (toString .)) -}}
{{- fail (printf "clusterCIDR: %q is not an IPv4 or IPv6 prefix of length 1 or more, such as 172.20.0.0/16 (a prefix covering a whole address family is refused)" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.credentials.mode "rrsa") .Values.credentials.rrsa.webhook (not .Values.credentials.rrsa.roleName) -}}
{{- fail "credentials.rrsa.roleName is required with credentials.rrsa.webhook=true: the ack-pod-identity-webhook injects the role named by the ServiceAccount annotation pod-identity.alibabacloud.com/role-name" -}}
{{- end -}}
{{- if and (eq .Values.credentials.mode "rrsa") .Values.credentials.rrsa.webhook (not .Values.serviceAccount.create) -}}
{{- fail "credentials.rrsa.webhook=true needs serviceAccount.create=true: the chart annotates the ServiceAccount for the ack-pod-identity-webhook (or annotate yours with pod-identity.alibabacloud.com/role-name and use credentials.rrsa.webhook=false with the ARNs)" -}}
{{- end -}}
{{- include "vrp.requireSecret" . -}}
{{- end -}}

{{/*
vrp.requireSecret fails an install whose credentials Secret does not exist,
instead of leaving the pod in ContainerCreating. lookup only sees the
cluster during install and upgrade: an offline render (helm template,
--dry-run=client) returns nothing for the release namespace too, and skips
the check.
*/}}
{{- define "vrp.requireSecret" -}}
{{- if and (eq .Values.credentials.mode "secret") (not .Values.credentials.secret.create) -}}
{{- if lookup "v1" "Namespace" "" .Release.Namespace -}}
{{- if not (lookup "v1" "Secret" .Release.Namespace .Values.credentials.secret.name) -}}
{{- fail (printf "the Secret %s/%s with the AccessKey does not exist. Create it first:\n  kubectl -n %s create secret generic %s --from-literal=access-key-id=<id> --from-literal=access-key-secret=<secret>\nor let the chart create it (credentials.secret.create=true with credentials.secret.accessKeyID and accessKeySecret), or choose another credentials.mode (cloudConfig, rrsa, ramRole)" .Release.Namespace .Values.credentials.secret.name .Release.Namespace .Values.credentials.secret.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The host the metrics and health servers bind: every address, or the node's IP. */}}
{{- define "vrp.bindHost" -}}{{ if .Values.bindToNodeIP }}$(HOST_IP){{ end }}{{- end -}}

{{/*
vrp.flagEnv renders the environment variable of one flag of `run`:
VPC_ROUTE_PUBLISHER_ and the flag's name in capitals with dashes as
underscores, as the publisher reads it. Call with (list "flag-name" value).
*/}}
{{- define "vrp.flagEnv" }}
        - name: VPC_ROUTE_PUBLISHER_{{ index . 0 | upper | replace "-" "_" }}
          value: {{ index . 1 | toString | quote }}
{{- end -}}
