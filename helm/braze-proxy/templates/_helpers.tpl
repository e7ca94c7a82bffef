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

{{- define "braze-proxy.labels" -}}
helm.sh/chart: {{ include "braze-proxy.chart" . }}
{{ include "braze-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: braze-proxy
{{- end }}

{{- define "braze-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "braze-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "braze-proxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
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
