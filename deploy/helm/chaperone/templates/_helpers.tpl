{{/* Names, labels and the checks every template relies on. */}}

{{- define "chaperone.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chaperone.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chaperone.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "chaperone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (gateway | authz). */}}
{{- define "chaperone.selector" -}}
app.kubernetes.io/name: {{ include "chaperone.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "chaperone.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "chaperone.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chaperone.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the npm package lives in the image (deploy/docker/Dockerfile). */}}
{{- define "chaperone.packageDir" -}}/opt/chaperone/lib/node_modules/chaperone{{- end -}}

{{- define "chaperone.policyDir" -}}
{{- if .Values.policies.configMap -}}/etc/chaperone/policies{{- else -}}{{ include "chaperone.packageDir" . }}/policies{{- end -}}
{{- end -}}

{{- define "chaperone.apiUrl" -}}
{{- printf "http://%s-api.%s.svc.cluster.local:%v" (include "chaperone.fullname" .) .Release.Namespace .Values.gateway.apiPort -}}
{{- end -}}

{{/* Refuses values that would render a broken or unsafe release. */}}
{{- define "chaperone.validate" -}}
{{- if empty (dig "identity" "issuers" list .Values.config) -}}
{{- fail "config.identity.issuers is empty: name the OIDC issuer(s) whose tokens identify callers (see values.yaml)" -}}
{{- end -}}
{{- if empty .Values.config.targets -}}
{{- fail "config.targets is empty: list the upstream APIs agents may reach (see values.yaml)" -}}
{{- end -}}
{{- if and (not .Values.database.existingSecret) (or (gt (int .Values.gateway.replicas) 1) (gt (int .Values.authz.replicas) 0)) -}}
{{- fail "gateway.replicas > 1 or authz.replicas > 0 needs database.existingSecret: replicas share the audit trail and fleet state through PostgreSQL" -}}
{{- end -}}
{{- if .Values.networkPolicy.enabled -}}
{{- if empty .Values.networkPolicy.agents -}}
{{- fail "networkPolicy.agents is empty: list the peers allowed to reach the egress listener (an empty list would allow everyone)" -}}
{{- end -}}
{{- if empty .Values.networkPolicy.admins -}}
{{- fail "networkPolicy.admins is empty: list the peers allowed to reach the HTTP API (an empty list would allow everyone)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The Secret holding the data-plane CA the gateways and the authz replicas share (values.yaml, dataPlane.tls):
the operator's, the chart's when there are authz replicas, or "" (each gateway pod generates its own).
*/}}
{{- define "chaperone.dataPlaneCaSecret" -}}
{{- if .Values.dataPlane.tls.existingSecret -}}
{{- .Values.dataPlane.tls.existingSecret -}}
{{- else if gt (int .Values.authz.replicas) 0 -}}
{{- printf "%s-data-plane-ca" (include "chaperone.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Where the data-plane CA Secret is mounted, and its two files there. */}}
{{- define "chaperone.dataPlaneCaDir" -}}/etc/chaperone/data-plane-ca{{- end -}}

{{- define "chaperone.dataPlaneCaCert" -}}
{{- printf "%s/%s" (include "chaperone.dataPlaneCaDir" .) (ternary .Values.dataPlane.tls.certKey "tls.crt" (not (empty .Values.dataPlane.tls.existingSecret))) -}}
{{- end -}}

{{- define "chaperone.dataPlaneCaKey" -}}
{{- printf "%s/%s" (include "chaperone.dataPlaneCaDir" .) (ternary .Values.dataPlane.tls.keyKey "tls.key" (not (empty .Values.dataPlane.tls.existingSecret))) -}}
{{- end -}}

{{/* The data-plane CA Secret as a pod volume: files 0400 (256), the pod's fsGroup adds group read. */}}
{{- define "chaperone.dataPlaneCaVolume" -}}
- name: data-plane-ca
  secret:
    secretName: {{ include "chaperone.dataPlaneCaSecret" . }}
    defaultMode: 256
{{- end -}}

{{- define "chaperone.dataPlaneCaMount" -}}
- name: data-plane-ca
  mountPath: {{ include "chaperone.dataPlaneCaDir" . }}
  readOnly: true
{{- end -}}

{{/* chaperone.yaml: the user's config with the pod-dependent parts set by the chart. */}}
{{- define "chaperone.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) -}}
{{- $_ := set $cfg "listeners" (list (dict "name" "egress" "address" "0.0.0.0" "port" (int .Values.gateway.listenerPort))) -}}
{{- $authz := list "127.0.0.1:9191" -}}
{{- if gt (int .Values.authz.replicas) 0 -}}
{{- $authz = append $authz (printf "%s-authz.%s.svc.cluster.local:%v" (include "chaperone.fullname" .) .Release.Namespace .Values.authz.port) -}}
{{- end -}}
{{- $_ := set $cfg "authz" (dict "addresses" $authz) -}}
{{- $cp := deepCopy (default dict $cfg.control_plane) -}}
{{- $_ := set $cp "xds_address" "127.0.0.1:18000" -}}
{{- $_ := set $cp "http_address" (printf "0.0.0.0:%v" .Values.gateway.apiPort) -}}
{{- if not $cp.issuer -}}{{- $_ := set $cp "issuer" (include "chaperone.apiUrl" .) -}}{{- end -}}
{{- $_ := set $cfg "control_plane" $cp -}}
{{- $policy := deepCopy (default dict $cfg.policy) -}}
{{- if not $policy.bundle -}}{{- $_ := set $policy "dir" (include "chaperone.policyDir" .) -}}{{- end -}}
{{- $_ := set $cfg "policy" $policy -}}
{{- $store := ternary "env:DATABASE_URL" "embedded" (not (empty .Values.database.existingSecret)) -}}
{{- $_ := set $cfg "audit" (dict "store" $store "spool_dir" "/var/lib/chaperone/spool") -}}
{{- if include "chaperone.dataPlaneCaSecret" . -}}
{{- $dataPlane := deepCopy (default dict $cfg.data_plane) -}}
{{- $tls := deepCopy (default dict $dataPlane.tls) -}}
{{- $_ := set $tls "ca_cert" (include "chaperone.dataPlaneCaCert" .) -}}
{{- $_ := set $tls "ca_key" (include "chaperone.dataPlaneCaKey" .) -}}
{{- $_ := set $dataPlane "tls" $tls -}}
{{- $_ := set $cfg "data_plane" $dataPlane -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Environment shared by both components: DATABASE_URL and the upstream credentials. */}}
{{- define "chaperone.env" -}}
{{- if .Values.database.existingSecret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.secretKey }}
{{- end }}
{{- range .Values.credentials }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
{{- end }}
{{- end -}}
