{{/* Labels every object carries; `component` is the service's name. */}}
{{- define "revops.labels" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: revops
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{/* What a Deployment, its PodDisruptionBudget and its Service select on. */}}
{{- define "revops.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "revops.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "revops.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry }}{{ printf "%s/revops-%s:%s" (trimSuffix "/" $registry) .component $tag }}{{ else }}{{ printf "revops-%s:%s" .component $tag }}{{ end }}
{{- end }}

{{- define "revops.kafkaBootstrap" -}}
{{- printf "%s-kafka-bootstrap:9092" .Values.kafka.name }}
{{- end }}

{{- define "revops.databaseSecret" -}}
{{- printf "%s%s" .root.Values.secrets.names.databasePrefix .component }}
{{- end }}

{{/*
The most partitions among the topics a consumer service reads: more instances than this
would wait idle in the consumer group. Fails the render when a topic is unknown.
*/}}
{{- define "revops.maxConsumers" -}}
{{- $most := 0 -}}
{{- range $wanted := .service.consumes -}}
{{- $found := false -}}
{{- range $.root.Values.kafka.topics -}}
{{- if eq .name $wanted -}}
{{- $found = true -}}
{{- if gt (int .partitions) $most }}{{ $most = int .partitions }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "services.%s.consumes names %s, which is not in kafka.topics" $.component $wanted) -}}
{{- end -}}
{{- end -}}
{{- $most -}}
{{- end }}
