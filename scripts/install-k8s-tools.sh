#!/usr/bin/env bash
# Installs what the offline Kubernetes manifest validation (tests/k8s) needs:
#   - kubectl          renders the kustomize overlay offline (`kubectl kustomize`);
#                      Debian's kubernetes-client, unless a kubectl is already present
#   - yamllint         Debian package
#   - python3-yaml     turns the rendered YAML into JSON for the schema check
#   - nodejs + npm     Debian packages (skipped when node/npm are already present)
#   - kubernetes-models (npm, pinned): the Kubernetes API object schemas (generated
#                      from the upstream OpenAPI spec) with an offline validator;
#                      installed into $STATECAST_K8S_TOOLS (default /usr/local/lib/statecast-k8s)
# Uses sudo when not root. Idempotent: does nothing when everything is present.
set -euo pipefail

tools_dir="${STATECAST_K8S_TOOLS:-/usr/local/lib/statecast-k8s}"
models_version="5.1.0"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v yamllint >/dev/null 2>&1 || missing+=(yamllint)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -f "$tools_dir/node_modules/kubernetes-models/package.json" ]] ||
   ! grep -q "\"version\": \"$models_version\"" "$tools_dir/node_modules/kubernetes-models/package.json"; then
  echo "installing kubernetes-models@$models_version into $tools_dir" >&2
  $SUDO mkdir -p "$tools_dir"
  $SUDO npm install --silent --no-audit --no-fund --prefix "$tools_dir" "kubernetes-models@$models_version" >/dev/null
fi
