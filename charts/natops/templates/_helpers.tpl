{{/* The release's full name: the release name, or <release>-natops */}}
{{- define "natops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "natops.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: call with (dict "root" $ "component" "webhook") */}}
{{- define "natops.selector" -}}
app.kubernetes.io/name: {{ default .root.Chart.Name .root.Values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "natops.serviceAccount" -}}
{{- default (include "natops.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "natops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "natops.secretName" -}}
{{- default (include "natops.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
the keys of natops's Secret that a pod mounts: from existingKeys, or the values given; none in a
pod that reads no repository (called with .natopsNoSource set: a handler worker, the uninstall
hook), which needs no secret but Redis's
*/}}
{{- define "natops.secretKeys" -}}
{{- if .natopsNoSource -}}
{{- list | toJson -}}
{{- else if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingKeys | toJson -}}
{{- else -}}
{{- $keys := list "webhook-secret" "dashboard-password" -}}
{{- if .Values.secrets.githubToken }}{{ $keys = append $keys "github-token" }}{{ end -}}
{{- if .Values.secrets.githubPrivateKey }}{{ $keys = append $keys "github-private-key" }}{{ end -}}
{{- range $value, $key := dict "gitPassword" "git-password" "gitToken" "git-token" "gitSshKey" "git-ssh-key" "gitKnownHosts" "git-known-hosts" "gitCa" "git-ca" -}}
{{- if get $.Values.secrets $value }}{{ $keys = append $keys $key }}{{ end -}}
{{- end -}}
{{- $keys | toJson -}}
{{- end -}}
{{- end -}}

{{/* the Redis password's Secret and key; empty name: no password (an external Redis without one) */}}
{{- define "natops.redisSecret" -}}
{{- if .Values.redis.enabled -}}
{{- dict "name" (default (printf "%s-redis" (include "natops.fullname" .)) .Values.redis.existingSecret) "key" (ternary .Values.redis.existingSecretKey "redis-password" (ne .Values.redis.existingSecret "")) | toJson -}}
{{- else -}}
{{- dict "name" .Values.externalRedis.existingSecret "key" .Values.externalRedis.existingSecretKey | toJson -}}
{{- end -}}
{{- end -}}

{{/* host:port of Redis */}}
{{- define "natops.redisAddress" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis.%s.svc:6379" (include "natops.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- $u := urlParse .Values.externalRedis.url -}}
{{- if contains ":" $u.host }}{{ $u.host }}{{ else }}{{ printf "%s:6379" $u.host }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* the Redis database index of an external URL (redis://host:port/2): "0" when none */}}
{{- define "natops.redisDb" -}}
{{- if .Values.redis.enabled }}0{{ else }}{{ default "0" (trimPrefix "/" (urlParse .Values.externalRedis.url).path) }}{{ end -}}
{{- end -}}

{{- define "natops.redisTls" -}}
{{- if and (not .Values.redis.enabled) (hasPrefix "rediss://" .Values.externalRedis.url) }}true{{ else }}false{{ end -}}
{{- end -}}

{{/* NATOPS_REDIS_URL: the password comes from NATOPS_REDIS_PASSWORD, expanded by the kubelet */}}
{{- define "natops.redisUrl" -}}
{{- $secret := include "natops.redisSecret" . | fromJson -}}
{{- $scheme := ternary "rediss" "redis" (eq (include "natops.redisTls" .) "true") -}}
{{- $db := include "natops.redisDb" . -}}
{{- if $secret.name -}}
{{- printf "%s://:$(NATOPS_REDIS_PASSWORD)@%s/%s" $scheme (include "natops.redisAddress" .) $db -}}
{{- else -}}
{{- printf "%s://%s/%s" $scheme (include "natops.redisAddress" .) $db -}}
{{- end -}}
{{- end -}}

{{/* The environment of every natops container: settings as values, secrets as files. */}}
{{- define "natops.env" -}}
{{- $secret := include "natops.redisSecret" . | fromJson -}}
{{- $keys := include "natops.secretKeys" . | fromJsonArray -}}
{{- if $secret.name }}
- name: NATOPS_REDIS_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ $secret.name | quote }}, key: {{ $secret.key | quote }} }
{{- end }}
- name: NATOPS_REDIS_URL
  value: {{ include "natops.redisUrl" . | quote }}
- name: NATOPS_PREFIX
  value: {{ .Values.prefix | quote }}
- name: NATOPS_RUNTIME
  value: kubernetes
- name: NATOPS_NAMESPACE
  value: {{ .Values.gateways.namespace | quote }}
- name: NATOPS_INSTANCE
  value: {{ default .Release.Name .Values.gateways.instance | quote }}
- name: NATOPS_NETWORK_MODE
  value: {{ .Values.gateways.networkMode | quote }}
- name: NATOPS_GATEWAY_IMAGES
  value: {{ join "," .Values.gateways.images | quote }}
- name: NATOPS_ALLOW_CONTROL_PLANE
  value: {{ .Values.gateways.allowControlPlane | toString | quote }}
# below the emptyDir: its root is 0777, which natops refuses as a shared directory; natops makes
# this one itself, 0700
- name: NATOPS_DATA_DIR
  value: /var/lib/natops/data
{{- if and (or (has "github-token" $keys) (has "github-private-key" $keys)) (not .Values.publicUrl) }}
{{- fail "publicUrl: GitHub's statuses link to natops's dashboard; set publicUrl to the address people reach it at" }}
{{- end }}
{{- with .Values.publicUrl }}
- name: NATOPS_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- if has "webhook-secret" $keys }}
- name: NATOPS_WEBHOOK_SECRET_FILE
  value: /var/run/secrets/natops/webhook-secret
{{- end }}
{{- if has "dashboard-password" $keys }}
- name: NATOPS_DASHBOARD_PASSWORD_FILE
  value: /var/run/secrets/natops/dashboard-password
{{- end }}
{{- if has "github-token" $keys }}
- name: NATOPS_GITHUB_TOKEN_FILE
  value: /var/run/secrets/natops/github-token
{{- end }}
{{- if has "github-private-key" $keys }}
- name: NATOPS_GITHUB_PRIVATE_KEY_FILE
  value: /var/run/secrets/natops/github-private-key
{{- end }}
{{- /* the source's settings only where the planner runs: a handler worker or the hook reads no repository */ -}}
{{- if not .natopsNoSource }}
{{- if not (or .Values.git.url (eq (toString (get .Values.env "NATOPS_SOURCE")) "github")) }}
{{- fail "git.url: natops needs a repository to read: set git.url (https, ssh or file), or env.NATOPS_SOURCE=github with env.NATOPS_REPOSITORY and a GitHub token or App" }}
{{- end }}
{{- with .Values.git.url }}
{{- if not (hasKey $.Values.env "NATOPS_SOURCE") }}
- name: NATOPS_SOURCE
  value: git-url
{{- end }}
- name: NATOPS_GIT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.git.username }}
- name: NATOPS_GIT_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- range $key, $name := dict "git-password" "NATOPS_GIT_PASSWORD_FILE" "git-token" "NATOPS_GIT_TOKEN_FILE" "git-ssh-key" "NATOPS_GIT_SSH_KEY_FILE" "git-known-hosts" "NATOPS_GIT_KNOWN_HOSTS_FILE" "git-ca" "NATOPS_GIT_CA_FILE" }}
{{- if has $key $keys }}
- name: {{ $name }}
  value: /var/run/secrets/natops/{{ $key }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.env }}
{{- if not (and $.natopsNoSource (regexMatch "^NATOPS_(SOURCE|REPOSITORY|GIT_|GITHUB_)" $name)) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* volumes of every natops pod: the secrets (read-only files) and a writable data directory */}}
{{- define "natops.volumes" -}}
{{- $keys := include "natops.secretKeys" . | fromJsonArray }}
{{- if $keys }}
- name: secrets
  secret:
    secretName: {{ include "natops.secretName" . | quote }}
    defaultMode: 0400
    items:
    {{- range $keys }}
      - { key: {{ . | quote }}, path: {{ . | quote }} }
    {{- end }}
{{- end }}
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "natops.volumeMounts" -}}
{{- if (include "natops.secretKeys" . | fromJsonArray) }}
- { name: secrets, mountPath: /var/run/secrets/natops, readOnly: true }
{{- end }}
- { name: data, mountPath: /var/lib/natops }
- { name: tmp, mountPath: /tmp }
{{- end -}}

{{- define "natops.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* the probes, on the ops port */}}
{{- define "natops.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: ops }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: ops }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}
