{{/* The chart name, overridable. */}}
{{- define "braze-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of the release's objects (63 characters at most, a DNS label). */}}
{{- define "braze-proxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "braze-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "braze-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "braze-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "braze-proxy.ownLabels" -}}
helm.sh/chart: {{ include "braze-proxy.chart" . }}
{{ include "braze-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: braze-proxy
{{- end }}

{{/* The `helm test` pod's labels: not the proxy's selector, so the Service never sends it traffic. */}}
{{- define "braze-proxy.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test-connection
{{- end }}

{{/* The labels of every object: the chart's own, then commonLabels (the chart's win: selectors rely on them). */}}
{{- define "braze-proxy.labels" -}}
{{- include "braze-proxy.labelsWith" (dict "ctx" .) }}
{{- end }}

{{/*
Labels from dict "ctx" (the root context), "extra" (an object's own labels from values) and "forced" (labels the
chart needs whatever the values say). Precedence: forced, the chart's own, extra, commonLabels.
*/}}
{{- define "braze-proxy.labelsWith" -}}
{{- $ctx := .ctx }}
{{- $own := include "braze-proxy.ownLabels" $ctx | fromYaml }}
{{- toYaml (merge (dict) (.forced | default (dict)) $own (.extra | default (dict)) ($ctx.Values.commonLabels | default (dict))) }}
{{- end }}

{{/*
Annotations from dict "ctx" and "extra" (an object's own, which win over commonAnnotations): a YAML map, or
nothing when there are none, for `with`.
*/}}
{{- define "braze-proxy.annotations" -}}
{{- $all := merge (dict) (.extra | default (dict)) (.ctx.Values.commonAnnotations | default (dict)) }}
{{- if $all }}{{ toYaml $all }}{{ end }}
{{- end }}

{{- define "braze-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "braze-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository:tag, repository@digest or repository:tag@digest (a digest pins the exact image). */}}
{{- define "braze-proxy.image" -}}
{{- $image := .Values.image }}
{{- $repository := $image.repository }}
{{- $registry := (.Values.global | default (dict)).imageRegistry | default $image.registry }}
{{- with $registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end }}
{{- if $image.digest }}
{{- if $image.tag }}{{ printf "%s:%s@%s" $repository $image.tag $image.digest }}
{{- else }}{{ printf "%s@%s" $repository $image.digest }}{{ end }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* True when Redis is configured, by URL or by an existing Secret. */}}
{{- define "braze-proxy.redisConfigured" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/*
Several pods without Redis would each spend the whole upstream budget (and cache apart): refuse to render.
*/}}
{{- define "braze-proxy.checkReplicas" -}}
{{- $value := ternary "autoscaling.maxReplicas" "replicaCount" .Values.autoscaling.enabled }}
{{- $most := ternary (int .Values.autoscaling.maxReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled }}
{{- if and (gt $most 1) (not (include "braze-proxy.redisConfigured" .)) }}
{{- fail (printf "%s is %d: more than one replica needs redis.url or redis.existingSecret, or each pod would spend the whole Braze budget on its own" $value $most) }}
{{- end }}
{{- end }}

{{/* Where the Redis CA bundle is mounted, and its file (BRAZE_PROXY_REDIS_TLS_CA_FILE). */}}
{{- define "braze-proxy.redisCaDir" -}}/etc/braze-proxy/redis-tls{{- end }}
{{- define "braze-proxy.redisCaFile" -}}{{ include "braze-proxy.redisCaDir" . }}/ca.crt{{- end }}

{{/* True when a Redis CA is configured; refuses contradictory TLS values. */}}
{{- define "braze-proxy.redisCa" -}}
{{- $tls := .Values.redis.tls | default (dict) }}
{{- if and $tls.caSecret $tls.caConfigMap }}
{{- fail "redis.tls: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- if or $tls.caSecret $tls.caConfigMap }}
{{- if not (include "braze-proxy.redisConfigured" .) }}
{{- fail "redis.tls needs Redis: set redis.url or redis.existingSecret" }}
{{- end }}
{{- if and .Values.redis.url (not (hasPrefix "rediss" .Values.redis.url)) }}
{{- fail "redis.tls: a CA is set but redis.url is not rediss://, rediss+sentinel:// or rediss+cluster://" }}
{{- end }}
{{- true }}
{{- end }}
{{- end }}

{{/* True when the chart itself creates the Secret: a credential given in values, not in an existingSecret. */}}
{{- define "braze-proxy.createSecret" -}}
{{- $braze := and (not .Values.braze.existingSecret) (or .Values.braze.apiKey .Values.braze.clientTokens) }}
{{- $redis := and (not .Values.redis.existingSecret) .Values.redis.url }}
{{- if or $braze $redis }}true{{ end }}
{{- end }}

{{/* The port name probes and the ServiceMonitor use: "metrics" when it has a port of its own. */}}
{{- define "braze-proxy.probePort" -}}
{{- if .Values.metricsPort }}metrics{{ else }}http{{ end }}
{{- end }}

{{/*
Replicas the budget is shared by while Redis is unreachable: each pod then spends budget/expected on its
own, so this is the most pods that can run (the HPA's maximum), never fewer: an underestimate would let
the fleet overspend Braze's shared limit.
*/}}
{{- define "braze-proxy.expectedReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{- define "braze-proxy.terminationGracePeriodSeconds" -}}
{{- $needed := add .Values.lifecycle.preStopSleepSeconds (ceil .Values.lifecycle.shutdownGraceSeconds) }}
{{- if kindIs "invalid" .Values.lifecycle.terminationGracePeriodSeconds }}
{{- add $needed 10 }}
{{- else if le (int .Values.lifecycle.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "lifecycle.terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownGraceSeconds (%v)" .Values.lifecycle.terminationGracePeriodSeconds $needed) }}
{{- else }}
{{- .Values.lifecycle.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
The variables the chart sets itself, and the value that sets each: extraEnv and config.extra may not set them.
*/}}
{{- define "braze-proxy.ownedVariables" -}}
{{- toJson (dict
  "BRAZE_PROXY_API_KEY" "braze.apiKey or braze.existingSecret"
  "BRAZE_PROXY_CLIENT_TOKENS" "braze.clientTokens or braze.existingSecret"
  "BRAZE_PROXY_ALLOW_ANONYMOUS" "braze.allowAnonymous"
  "BRAZE_PROXY_REDIS_URL" "redis.url or redis.existingSecret"
  "BRAZE_PROXY_HOST" "the chart (0.0.0.0)"
  "BRAZE_PROXY_PORT" "the chart (8080, which the probes and the Service follow)"
  "BRAZE_PROXY_METRICS_PORT" "metricsPort"
  "BRAZE_PROXY_SHUTDOWN_GRACE_SECONDS" "lifecycle.shutdownGraceSeconds"
) }}
{{- end }}

{{/*
Every setting of the proxy (proxy/settings.py; tests/artifacts/test_helm_chart.py keeps this list equal to it).
*/}}
{{- define "braze-proxy.settingNames" -}}
BRAZE_PROXY_UPSTREAM_URL BRAZE_PROXY_UPSTREAM_PROXY BRAZE_PROXY_API_KEY BRAZE_PROXY_CLIENT_TOKENS BRAZE_PROXY_UPSTREAM_TIMEOUT BRAZE_PROXY_UPSTREAM_CONNECT_TIMEOUT BRAZE_PROXY_UPSTREAM_MAX_BODY_BYTES BRAZE_PROXY_UPSTREAM_MAX_CONNECTIONS BRAZE_PROXY_UPSTREAM_RETRIES BRAZE_PROXY_UPSTREAM_RETRY_BUDGET_SECONDS BRAZE_PROXY_REDIS_URL BRAZE_PROXY_REDIS_TLS_CA_FILE BRAZE_PROXY_REDIS_KEY_PREFIX BRAZE_PROXY_REDIS_TIMEOUT BRAZE_PROXY_REDIS_MAX_CONNECTIONS BRAZE_PROXY_REDIS_FILL_WAKEUPS BRAZE_PROXY_MEMORY_MAX_ENTRIES BRAZE_PROXY_MEMORY_MAX_BYTES BRAZE_PROXY_L1_ENABLED BRAZE_PROXY_WINDOWS BRAZE_PROXY_WIDEN_FETCHES BRAZE_PROXY_REPORTING_TIMEZONE BRAZE_PROXY_TTL_OPEN_HOUR BRAZE_PROXY_TTL_OPEN_DAY BRAZE_PROXY_SETTLE_WINDOW_HOUR BRAZE_PROXY_SETTLE_WINDOW_DAY BRAZE_PROXY_TTL_RECENT_HOUR BRAZE_PROXY_TTL_RECENT_DAY BRAZE_PROXY_TTL_SETTLED BRAZE_PROXY_TTL_LISTS BRAZE_PROXY_TTL_DETAILS BRAZE_PROXY_STALE_SECONDS BRAZE_PROXY_STALE_WHILE_REVALIDATE_SECONDS BRAZE_PROXY_RATE_LIMIT_PER_HOUR BRAZE_PROXY_RATE_LIMIT_BURST BRAZE_PROXY_RATE_LIMIT_MAX_WAIT_SECONDS BRAZE_PROXY_PROBATION_SHARE BRAZE_PROXY_ALLOW_ANONYMOUS BRAZE_PROXY_WORKSPACES BRAZE_PROXY_BUDGET_GROUPS BRAZE_PROXY_ENDPOINT_GROUPS BRAZE_PROXY_EXPECTED_REPLICAS BRAZE_PROXY_REDIS_OUTAGE_POLICY BRAZE_PROXY_HOST BRAZE_PROXY_PORT BRAZE_PROXY_METRICS_PORT BRAZE_PROXY_MAX_QUERY_BYTES BRAZE_PROXY_MAX_HEADER_BYTES BRAZE_PROXY_SHUTDOWN_GRACE_SECONDS BRAZE_PROXY_LOG_LEVEL BRAZE_PROXY_ACCESS_LOG BRAZE_PROXY_ADMIN_TOKEN BRAZE_PROXY_CLIENT_TOKENS_FILE BRAZE_PROXY_WARM_FILE BRAZE_PROXY_REFRESH_AHEAD
{{- end }}

{{/* Refuses extraEnv and config.extra entries that the chart owns, or (config.extra) that are no setting. */}}
{{- define "braze-proxy.checkVariables" -}}
{{- $owned := include "braze-proxy.ownedVariables" . | fromJson }}
{{- range $i, $env := .Values.extraEnv }}
{{- with get $owned $env.name }}
{{- fail (printf "extraEnv[%d].name: %s is set by the chart from %s; set that instead" $i $env.name .) }}
{{- end }}
{{- end }}
{{- $known := splitList " " (include "braze-proxy.settingNames" . | trim) }}
{{- range $name, $_ := .Values.config.extra }}
{{- with get $owned $name }}
{{- fail (printf "config.extra.%s is set by the chart from %s; set that instead" $name .) }}
{{- end }}
{{- if not (has $name $known) }}
{{- fail (printf "config.extra.%s is not a setting of the proxy (a typo?); `braze-proxy --help` lists them" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The fewest pods the Deployment runs: the HPA's minimum, or replicaCount. */}}
{{- define "braze-proxy.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}
