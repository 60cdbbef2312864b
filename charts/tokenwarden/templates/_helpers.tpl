{{/*
Names, labels and shared pod settings of the tokenwarden chart.
*/}}

{{- define "tokenwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name; components append -controller / -issuer (at most 52 + 11). */}}
{{- define "tokenwarden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else if contains (include "tokenwarden.name" .) .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tokenwarden.name" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. Call with (dict "root" $ "component" "controller"). */}}
{{- define "tokenwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "tokenwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tokenwarden
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tokenwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenwarden.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The component's object name: <fullname>-<component>. */}}
{{- define "tokenwarden.componentName" -}}
{{- printf "%s-%s" (include "tokenwarden.fullname" .root) .component -}}
{{- end -}}

{{- define "tokenwarden.image" -}}
{{- $image := .Values.image -}}
{{- $name := $image.repository -}}
{{- if $image.registry -}}{{- $name = printf "%s/%s" $image.registry $image.repository -}}{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $name $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $name (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The issuer's public URL: issuer.url, else the ingress host, else https:// and the
HTTPRoute's first hostname (a Gateway listener for OAuth terminates TLS; the chart cannot see
which listener the route attaches to), else the in-cluster Service. */}}
{{- define "tokenwarden.issuerUrl" -}}
{{- if .Values.issuer.url -}}
{{- .Values.issuer.url -}}
{{- else if and .Values.issuer.ingress.enabled .Values.issuer.ingress.host -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.issuer.ingress.tlsSecretName))) .Values.issuer.ingress.host -}}
{{- else if and .Values.issuer.httpRoute.enabled .Values.issuer.httpRoute.hostnames -}}
{{- printf "https://%s" (first .Values.issuer.httpRoute.hostnames) -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "tokenwarden.componentName" (dict "root" . "component" "issuer")) .Release.Namespace (int .Values.issuer.service.port) -}}
{{- end -}}
{{- end -}}

{{/* Namespaces whose client Secrets the controller may touch, or "*" for all. */}}
{{- define "tokenwarden.secretNamespaces" -}}
{{- if has "*" .Values.controller.clientSecretNamespaces -}}
*
{{- else -}}
{{- .Values.controller.clientSecretNamespaces | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by both Deployments. Call with
(dict "root" $ "values" .Values.controller "component" "controller"). Several replicas with
neither spread nor affinity given (or an autoscaled issuer) are spread over nodes where the
scheduler can (soft), so one node going down does not take all of them. */}}
{{- define "tokenwarden.podSettings" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else if and (or (gt (int .values.replicas) 1) (dig "autoscaling" "enabled" false .values)) (not .values.affinity) }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tokenwarden.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Environment shared by both containers. */}}
{{- define "tokenwarden.commonEnv" -}}
- name: RUST_LOG
  value: {{ .values.logLevel | quote }}
- name: TOKENWARDEN_LOG_FORMAT
  value: {{ .values.logFormat | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The egress rules both components need: DNS and the API server. Call with
.Values.networkPolicy.egress. An empty dns.to allows the DNS ports to any address (a
node-local cache, say); apiServer.to is never empty (values.schema.json), since a rule
without `to` would open its ports to every address. */}}
{{- define "tokenwarden.egressToCluster" -}}
- ports:
    {{- toYaml .dns.ports | nindent 4 }}
  {{- with .dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- to:
    {{- toYaml .apiServer.to | nindent 4 }}
  ports:
    {{- toYaml .apiServer.ports | nindent 4 }}
{{- end -}}
