#!/usr/bin/env bash
# Proves that an existing deployment keeps its resources across a change of this module's
# addresses (the `moved` blocks): a state is made from the plan of the module at OLD_REV, then the
# module as it is in the working tree plans against that state. It must plan no create and no
# delete, and every address of OLD_REV's state that it no longer declares must be a move.
# Offline: the aws provider gets fake credentials, and its calls at plan time (STS
# GetCallerIdentity, IoT DescribeEndpoint, Step Functions ValidateStateMachineDefinition) go to a
# small local endpoint (moved-check-endpoint.mjs).
#
# Usage: terraform/scripts/moved-check.sh OLD_REV
# Environment: ROTOR_TF_PLUGIN_DIR (default /opt/tf-plugins if present), as tf-test.sh.
# Needs dist/functions/*.zip (npm run build), which both plans read.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OLD_REV" >&2
  exit 2
fi
OLD_REV="$1"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$MODULE_DIR/.." && pwd)"
SCRIPTS_DIR="$MODULE_DIR/scripts"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rotor-moved.XXXXXX")"
endpoint_pid=""
cleanup() {
  [[ -n "$endpoint_pid" ]] && kill "$endpoint_pid" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1
plugin_dir="${ROTOR_TF_PLUGIN_DIR:-}"
[[ -z "$plugin_dir" && -d /opt/tf-plugins ]] && plugin_dir=/opt/tf-plugins
init_args=(-backend=false -input=false -no-color)
[[ -n "$plugin_dir" ]] && init_args+=("-plugin-dir=$plugin_dir")

# --- the two trees: OLD_REV's and the working tree's (module, wiring, ASL) -------------------
mkdir -p "$WORK/old" "$WORK/new"
(cd "$REPO_DIR" && git archive "$OLD_REV" terraform wiring statemachines) | tar -x -C "$WORK/old"
(cd "$REPO_DIR" && tar -c --exclude='.terraform*' --exclude='terraform/tests' terraform wiring statemachines) | tar -x -C "$WORK/new"

# --- the local endpoint and the provider that uses it ----------------------------------------
node "$SCRIPTS_DIR/moved-check-endpoint.mjs" >"$WORK/endpoint" &
endpoint_pid=$!
for _ in $(seq 1 100); do
  [[ -s "$WORK/endpoint" ]] && break
  sleep 0.1
done
url="$(head -n 1 "$WORK/endpoint")"
for tree in old new; do
  cat >"$WORK/$tree/terraform/zz_moved_check_provider.tf" <<EOF
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "mock"
  secret_key                  = "mock"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {
    sts = "$url"
    iot = "$url"
    sfn = "$url"
  }
}
EOF
done

tf() { local tree="$1"; shift; TF_DATA_DIR="$WORK/$tree/.tfdata" terraform -chdir="$WORK/$tree/terraform" "$@"; }
vars=("-var=artifacts_dir=$REPO_DIR/dist/functions")

# --- a state as OLD_REV would have left it after apply ---------------------------------------
tf old init "${init_args[@]}" >"$WORK/old-init.log"
tf old plan -input=false -no-color -lock=false "${vars[@]}" -out="$WORK/old.plan" >"$WORK/old-plan.log"
tf old show -json "$WORK/old.plan" >"$WORK/old-plan.json"
tf old providers schema -json >"$WORK/schema.json"
node "$SCRIPTS_DIR/moved-check-state.mjs" state "$WORK/old-plan.json" "$WORK/schema.json" >"$WORK/old.tfstate"
# What referred to a made-up id was unknown in that plan: OLD_REV plans against the state until
# it would replace nothing (a plan fills in one more link of each chain of references).
settled=0
for round in 1 2 3 4; do
  cp "$WORK/old.tfstate" "$WORK/old/terraform/terraform.tfstate"
  tf old plan -input=false -no-color -lock=false -refresh=false "${vars[@]}" -out="$WORK/settle.plan" >"$WORK/settle-$round.log"
  tf old show -json "$WORK/settle.plan" >"$WORK/settle.json"
  status=0
  node "$SCRIPTS_DIR/moved-check-state.mjs" settle "$WORK/old.tfstate" "$WORK/settle.json" >"$WORK/next.tfstate" || status=$?
  [[ $status -ne 0 && $status -ne 3 ]] && exit "$status"
  mv "$WORK/next.tfstate" "$WORK/old.tfstate"
  if [[ $status -eq 0 ]]; then
    settled=1
    break
  fi
  echo "moved-check: round $round: OLD_REV still replaces resources of the made-up state; filling in what it computed"
done
[[ $settled -eq 1 ]] || echo "moved-check: the made-up state did not settle in 4 rounds; compare reports what OLD_REV replaces" >&2

# --- both trees plan against it ----------------------------------------------------------------
tf new init "${init_args[@]}" >"$WORK/new-init.log"
for tree in old new; do
  cp "$WORK/old.tfstate" "$WORK/$tree/terraform/terraform.tfstate"
  tf "$tree" plan -input=false -no-color -lock=false -refresh=false "${vars[@]}" -out="$WORK/$tree-again.plan" >"$WORK/$tree-again.log"
  tf "$tree" show -json "$WORK/$tree-again.plan" >"$WORK/$tree-again.json"
done
node "$SCRIPTS_DIR/moved-check-state.mjs" compare "$WORK/old.tfstate" "$WORK/old-again.json" "$WORK/new-again.json"
