{{/* Names and labels shared by every object. */}}
{{- define "anygan.fullname" -}}
{{- printf "%s-anygan" .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}

{{- define "anygan.labels" -}}
app.kubernetes.io/name: anygan
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "anygan.selector" -}}
app.kubernetes.io/name: anygan
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Environment both binaries read: TLS, token, store options, log format. */}}
{{- define "anygan.securityEnv" -}}
{{- if .Values.tls.enabled }}
- name: ANYGAN_TLS_CA
  value: /etc/anygan/tls/ca.crt
- name: ANYGAN_TLS_CERT
  value: /etc/anygan/tls/tls.crt
- name: ANYGAN_TLS_KEY
  value: /etc/anygan/tls/tls.key
- name: ANYGAN_TLS_SERVER_NAME
  value: {{ .Values.tls.serverName | quote }}
{{- end }}
{{- if .Values.auth.enabled }}
- name: ANYGAN_TOKEN_FILE
  value: /etc/anygan/token/token
{{- end }}
{{- if .Values.store.optionsSecret }}
- name: ANYGAN_STORE_OPTIONS_FILE
  value: /etc/anygan/store/options
{{- end }}
- name: ANYGAN_LOG_JSON
  value: {{ .Values.logJson | quote }}
{{- end -}}

{{- define "anygan.secretMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/anygan/tls
  readOnly: true
{{- end }}
{{- if .Values.auth.enabled }}
- name: token
  mountPath: /etc/anygan/token
  readOnly: true
{{- end }}
{{- if .Values.store.optionsSecret }}
- name: store
  mountPath: /etc/anygan/store
  readOnly: true
{{- end }}
{{- end -}}

{{- define "anygan.secretVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName }}
    defaultMode: 0400
{{- end }}
{{- if .Values.auth.enabled }}
- name: token
  secret:
    secretName: {{ .Values.auth.tokenSecret }}
    defaultMode: 0400
{{- end }}
{{- if .Values.store.optionsSecret }}
- name: store
  secret:
    secretName: {{ .Values.store.optionsSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{/* Store options that are not secret, as flags. */}}
{{- define "anygan.storeArgs" -}}
{{- if .Values.store.endpoint }}
- --store-option
- aws_endpoint={{ .Values.store.endpoint }}
{{- end }}
- --store-option
- aws_region={{ .Values.store.region }}
{{- if .Values.store.allowHttp }}
- --store-option
- aws_allow_http=true
{{- end }}
{{- end -}}

{{- define "anygan.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "anygan.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
