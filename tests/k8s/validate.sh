#!/usr/bin/env bash
# Offline validation of deploy/k8s (run by ctest as k8s_manifests):
#   1. yamllint over every manifest and config file;
#   2. deploy/k8s/base/redis.conf equals deploy/redis/redis.conf, and Redis
#      starts with it;
#   3. `kubectl kustomize` renders the small overlay and the restore overlay;
#   4. every rendered object validates against the Kubernetes API schemas
#      (kubernetes-models, offline);
#   5. the ConfigMap's statecast.yaml passes each binary's --check-config.
# Usage: tests/k8s/validate.sh BIN_DIR      (BIN_DIR: build/bin)
# Tools: scripts/install-k8s-tools.sh. A missing tool or binary is a failure.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${1:?usage: validate.sh BIN_DIR}"
models="${STATECAST_K8S_TOOLS:-/usr/local/lib/statecast-k8s}/node_modules/kubernetes-models"
work="$(mktemp -d)"
redis_pid=""
cleanup() {
  if [[ -n "$redis_pid" ]]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*" >&2; failed=$((failed + 1)); }
finish() {
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit $?
}

for tool in yamllint kubectl node python3 redis-server redis-cli; do
  command -v "$tool" >/dev/null || bad "missing tool: $tool (run scripts/install-k8s-tools.sh)"
done
python3 -c 'import yaml' 2>/dev/null || bad "missing python3-yaml (run scripts/install-k8s-tools.sh)"
[[ -f "$models/package.json" ]] || bad "missing $models (run scripts/install-k8s-tools.sh)"
[[ $failed -eq 0 ]] || finish

# 1. yamllint
if yamllint -s -c "$here/yamllint.yaml" "$root/deploy/k8s" >"$work/yamllint.log" 2>&1; then
  ok "yamllint deploy/k8s"
else
  cat "$work/yamllint.log" >&2
  bad "yamllint deploy/k8s"
fi

# 2. redis.conf: one file, two places; and Redis accepts it
if cmp -s "$root/deploy/redis/redis.conf" "$root/deploy/k8s/base/redis.conf"; then
  ok "deploy/k8s/base/redis.conf equals deploy/redis/redis.conf"
else
  bad "deploy/k8s/base/redis.conf differs from deploy/redis/redis.conf (copy it)"
fi
mkdir -p "$work/redis"
sed "s|^dir /data\$|dir $work/redis|" "$root/deploy/redis/redis.conf" >"$work/redis.conf"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server "$work/redis.conf" --port "$port" --bind 127.0.0.1 --requirepass test >"$work/redis.log" 2>&1 &
redis_pid=$!
up=""
for _ in $(seq 1 100); do
  if [[ "$(REDISCLI_AUTH=test redis-cli -p "$port" ping 2>/dev/null)" == PONG ]]; then up=1; break; fi
  kill -0 "$redis_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -n "$up" ]] && [[ "$(REDISCLI_AUTH=test redis-cli -p "$port" config get appendonly | tail -1)" == yes ]] &&
   [[ "$(REDISCLI_AUTH=test redis-cli -p "$port" config get appendfsync | tail -1)" == everysec ]]; then
  ok "redis-server starts with deploy/redis/redis.conf (AOF on, appendfsync everysec)"
else
  cat "$work/redis.log" >&2
  bad "redis-server with deploy/redis/redis.conf"
fi
kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; redis_pid=""

# 3. render (on a copy, with a stand-in for the never-committed password file)
cp -r "$root/deploy/k8s" "$work/k8s"
echo "validation-only-password" >"$work/k8s/overlays/small/redis-password.txt"
for overlay in small small-restore; do
  if kubectl kustomize "$work/k8s/overlays/$overlay" >"$work/$overlay.yaml" 2>"$work/$overlay.err"; then
    ok "kubectl kustomize overlays/$overlay ($(grep -c '^kind:' "$work/$overlay.yaml") objects)"
  else
    cat "$work/$overlay.err" >&2
    bad "kubectl kustomize overlays/$overlay"
    continue
  fi
  # 4. schemas
  if python3 -c 'import json,sys,yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)' \
       <"$work/$overlay.yaml" >"$work/$overlay.json" &&
     K8S_MODELS_DIR="$models" node "$here/validate-schemas.mjs" <"$work/$overlay.json" >"$work/$overlay.schema" 2>&1; then
    ok "overlays/$overlay: $(tail -1 "$work/$overlay.schema")"
  else
    cat "$work/$overlay.schema" >&2
    bad "overlays/$overlay: schema validation"
  fi
done

# 5. the ConfigMap's config file, checked by every binary that reads it
if python3 - "$work/small.json" "$work/statecast.yaml" <<'PY'
import json, sys
objs = json.load(open(sys.argv[1]))
cm = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "statecast-config"]
open(sys.argv[2], "w").write(cm[0]["data"]["statecast.yaml"])
PY
then
  ok "extracted statecast.yaml from ConfigMap statecast-config"
  echo "validation-only-password" >"$work/redis_password"
  for b in statecast-kv-updater statecast-apiserver statecast-snapshot statecast-publisher; do
    if [[ ! -x "$bin_dir/$b" ]]; then
      bad "$b --check-config: $bin_dir/$b is not built"
      continue
    fi
    # The Secret's mount path does not exist here: the variable (a higher
    # layer) points the password file at a local stand-in.
    if STATECAST_CONFIG="$work/statecast.yaml" STATECAST_REDIS_PASSWORD_FILE="$work/redis_password" \
         "$bin_dir/$b" --check-config >"$work/$b.check" 2>&1; then
      ok "$b --check-config accepts the ConfigMap's statecast.yaml"
    else
      cat "$work/$b.check" >&2
      bad "$b --check-config"
    fi
  done
else
  bad "no ConfigMap statecast-config with statecast.yaml in the rendered overlay"
fi

finish
