#!/usr/bin/env bash
# Checks the Terraform module offline, as CI does: fmt, init (from a local plugin mirror when
# there is one), validate, then `terraform test` (mock provider and a real-provider plan; no
# AWS call, no registry). Writes RESULTS_DIR/terraform.json {"passed":N,"failed":N,"skipped":N}
# for scripts/test-summary.ts and ends with one line: "terraform: N passed, N failed".
# fmt and validate count as one check each; every `terraform test` run counts as one.
#
# Usage: terraform/scripts/tf-test.sh RESULTS_DIR
# Environment:
#   ROTOR_TF_PLUGIN_DIR     provider mirror for `init -plugin-dir` (default /opt/tf-plugins if present)
#   ROTOR_TF_ARTIFACTS_DIR  folder of NAME.zip bundles to test with instead of dist/functions
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 RESULTS_DIR" >&2
  exit 2
fi

if ! command -v terraform >/dev/null 2>&1; then
  echo "" >&2
  echo "######################################################################" >&2
  echo "## WARNING: terraform is not installed: the Terraform checks did not run." >&2
  echo "## Install Terraform >= 1.7 to check terraform/ (make tf-test)." >&2
  echo "######################################################################" >&2
  exit 0
fi

mkdir -p "$1"
RESULTS_DIR="$(cd "$1" && pwd)"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$MODULE_DIR/.." && pwd)"

export TF_CLI_CONFIG_FILE=/dev/null
export TF_IN_AUTOMATION=1
# A throwaway data dir: no .terraform/ left in the checkout, nothing stale reused from one.
TF_DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/rotor-tf.XXXXXX")"
export TF_DATA_DIR
LOCK_FILE="$MODULE_DIR/.terraform.lock.hcl"
[[ -e "$LOCK_FILE" ]] && KEEP_LOCK=1 || KEEP_LOCK=0
cleanup() {
  rm -rf "$TF_DATA_DIR"
  # Only remove a lock file this run created (a user's own lock file stays).
  [[ $KEEP_LOCK -eq 0 ]] && rm -f "$LOCK_FILE"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0

finish() {
  printf '{"passed":%d,"failed":%d,"skipped":%d}\n' "$passed" "$failed" "$skipped" >"$RESULTS_DIR/terraform.json"
  echo "terraform: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit $?
}

tf() { terraform -chdir="$MODULE_DIR" "$@"; }

# --- the function bundles the module deploys -------------------------------------------------
test_vars=()
if [[ -n "${ROTOR_TF_ARTIFACTS_DIR:-}" ]]; then
  test_vars+=("-var=artifacts_dir=$(cd "$ROTOR_TF_ARTIFACTS_DIR" && pwd)")
else
  missing="$(cd "$REPO_DIR" && node -e '
    const fs = require("fs");
    const names = Object.keys(JSON.parse(fs.readFileSync("wiring/wiring.json", "utf8")).functions);
    console.log(names.filter((n) => !fs.existsSync(`dist/functions/${n}.zip`)).join(" "));')"
  if [[ -n "$missing" ]]; then
    echo "tf-test: dist/functions lacks $missing; building the functions first"
    if ! (cd "$REPO_DIR" && npm run --silent build); then
      echo "tf-test: npm run build failed; the tests that read the bundles will fail" >&2
    fi
  fi
fi

# --- fmt -------------------------------------------------------------------------------------
echo "tf-test: terraform fmt -check -recursive"
if tf fmt -check -recursive -diff; then
  passed=$((passed + 1))
else
  echo "tf-test: terraform fmt found unformatted files (run: terraform -chdir=terraform fmt -recursive)" >&2
  failed=$((failed + 1))
fi

# --- init ------------------------------------------------------------------------------------
plugin_dir="${ROTOR_TF_PLUGIN_DIR:-}"
if [[ -z "$plugin_dir" && -d /opt/tf-plugins ]]; then
  plugin_dir=/opt/tf-plugins
fi
init_args=(-backend=false -input=false -no-color)
if [[ -n "$plugin_dir" ]]; then
  echo "tf-test: terraform init from the provider mirror $plugin_dir"
  init_args+=("-plugin-dir=$plugin_dir")
else
  echo "tf-test: terraform init from the registry (no ROTOR_TF_PLUGIN_DIR, no /opt/tf-plugins)"
fi
if ! tf init "${init_args[@]}" >"$TF_DATA_DIR/init.log" 2>&1; then
  cat "$TF_DATA_DIR/init.log" >&2
  echo "tf-test: terraform init failed; validate and test did not run" >&2
  failed=$((failed + 1))
  finish
fi

# --- validate --------------------------------------------------------------------------------
echo "tf-test: terraform validate"
if tf validate -no-color; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# --- test ------------------------------------------------------------------------------------
echo "tf-test: terraform test"
test_log="$TF_DATA_DIR/test.log"
tf test -no-color "${test_vars[@]}" 2>&1 | tee "$test_log"
summary="$(grep -Eo '(Success|Failure)! [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?' "$test_log" | tail -n 1)"
if [[ -n "$summary" ]]; then
  passed=$((passed + $(sed -E 's/.*! ([0-9]+) passed.*/\1/' <<<"$summary")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")))
  if [[ "$summary" == *skipped* ]]; then
    skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$summary")))
  fi
else
  # No summary: terraform test stopped before running (a broken test file, a bad -var).
  runs_passed="$(grep -cE '^\s*run ".*"\.\.\. pass' "$test_log")"
  runs_failed="$(grep -cE '^\s*run ".*"\.\.\. fail' "$test_log")"
  passed=$((passed + runs_passed))
  failed=$((failed + runs_failed))
  if [[ $((runs_passed + runs_failed)) -eq 0 || $runs_failed -eq 0 ]]; then
    failed=$((failed + 1))
  fi
fi

finish
