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
{{- with $image.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end }}
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
