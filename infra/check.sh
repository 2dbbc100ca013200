#!/usr/bin/env bash
# `make infra-check`: every check of infra/terraform that needs no AWS account, one line per stage.
#   fmt       terraform fmt -check -recursive
#   init      each env from the local provider mirror (no network), with a local backend: the envs
#             keep state in S3 (backend "s3"), which init and plan would have to reach, so the
#             checks run on a copy of infra/terraform (infra/.build/tree) whose envs get a
#             `backend "local"` override file; nothing else differs
#   validate  each env
#   plan      each env with dummy credentials, offline_plan=true and every proxy pointed at a
#             closed port, so that any AWS call would fail the plan; an env folder's
#             offline-plan.tfvars (placeholders for what the env requires, e.g. prod's
#             certificate) is passed too
#   checkov   static security scan: zero failed checks, skips only as #checkov:skip with a reason
# Details of a failing stage are printed; everything else lands in infra/.build/ (git-ignored).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TF_ROOT=$REPO/infra/terraform
BUILD=$REPO/infra/.build
CHECKOV=${CHECKOV:-$REPO/.venv-infra/bin/checkov}
ENVS=${INFRA_ENVS:-dev prod}
mkdir -p "$BUILD"

stage() { printf '%-14s %s\n' "$1" "$2"; }
fail() {
  stage "$1" "FAILED: $2"
  [[ -f "${3:-}" ]] && sed 's/^/    /' "$3"
  exit 1
}
command -v terraform >/dev/null || fail terraform "terraform is not on PATH (1.11 or newer)"

# --- fmt ----------------------------------------------------------------------------------------
if terraform fmt -check -recursive "$TF_ROOT" >"$BUILD/fmt.log" 2>&1; then
  stage fmt "ok ($(find "$TF_ROOT" -name '*.tf' -not -path '*/.terraform/*' | wc -l | tr -d ' ') files)"
else
  fail fmt "run: terraform fmt -recursive infra/terraform" "$BUILD/fmt.log"
fi

# --- CLI configuration: the local mirror, generated for this machine ---------------------------
export TF_CLI_CONFIG_FILE=$BUILD/terraformrc
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
if mirror=$("$REPO/infra/tf-mirror.sh"); then
  cat >"$TF_CLI_CONFIG_FILE" <<HCL
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
}
HCL
  versions=$(ls "$mirror/registry.terraform.io/hashicorp/aws" | sed -E 's/^terraform-provider-aws_([^_]+)_.*/\1/' |
    grep -E '^[0-9]' | sort -u | tr '\n' ' ' | sed 's/ $//')
  stage mirror "$mirror (hashicorp/aws $versions)"
else
  # No mirror: the public registry, with a cache so each env does not download the provider again.
  mkdir -p "$BUILD/plugin-cache"
  echo "plugin_cache_dir = \"$BUILD/plugin-cache\"" >"$TF_CLI_CONFIG_FILE"
  stage mirror "none found (set RECOPS_TF_MIRROR); installing from registry.terraform.io"
fi

# --- init, validate, plan per env ----------------------------------------------------------------
# `terraform plan` needs an initialised backend (init -backend=false leaves none), and the S3
# backend cannot be initialised offline: a copy of the tree takes a local one instead.
TREE=$BUILD/tree
rm -rf "$TREE"
mkdir -p "$TREE"
tar -C "$REPO/infra" --exclude='.terraform' --exclude='.terraform.lock.hcl' --exclude='*.tfstate*' \
  -cf - terraform | tar -C "$TREE" -xf -
offline_env=(
  AWS_ACCESS_KEY_ID=AKIAOFFLINEPLANONLY0 AWS_SECRET_ACCESS_KEY=offline-plan-only
  AWS_SESSION_TOKEN= AWS_PROFILE= AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  AWS_EC2_METADATA_DISABLED=true
  HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
  http_proxy=http://127.0.0.1:9 NO_PROXY= no_proxy=
)
for env in $ENVS; do
  dir=$TREE/terraform/envs/$env
  [[ -d "$dir" ]] || fail "init $env" "no such environment: infra/terraform/envs/$env"
  export TF_DATA_DIR=$BUILD/$env/terraform-data
  log=$BUILD/$env
  mkdir -p "$log"
  printf 'terraform {\n  backend "local" {}\n}\n' >"$dir/offline_check_override.tf"

  start=$SECONDS
  terraform -chdir="$dir" init -input=false -no-color >"$log/init.log" 2>&1 ||
    fail "init $env" "see below" "$log/init.log"
  stage "init $env" "ok ($((SECONDS - start))s)"

  terraform -chdir="$dir" validate -no-color >"$log/validate.log" 2>&1 ||
    fail "validate $env" "see below" "$log/validate.log"
  stage "validate $env" "ok"

  start=$SECONDS
  placeholders=()
  [[ -f "$dir/offline-plan.tfvars" ]] && placeholders=(-var-file=offline-plan.tfvars)
  env "${offline_env[@]}" terraform -chdir="$dir" plan -input=false -lock=false -no-color \
    -var offline_plan=true ${placeholders[@]+"${placeholders[@]}"} -out="$log/plan.tfplan" >"$log/plan.log" 2>&1 ||
    fail "plan $env" "see below" "$log/plan.log"
  terraform -chdir="$dir" show -json "$log/plan.tfplan" >"$log/plan.json"
  summary=$(grep -E '^Plan: ' "$log/plan.log" | sed 's/^Plan: //; s/\.$//')
  stage "plan $env" "$summary (offline, $((SECONDS - start))s; infra/.build/$env/plan.json)"
done
unset TF_DATA_DIR

# --- checkov ------------------------------------------------------------------------------------
[[ -x "$CHECKOV" ]] || fail checkov "$CHECKOV not found (make infra-check installs it into .venv-infra)"
start=$SECONDS
status=0
"$CHECKOV" --directory "$TF_ROOT" --framework terraform --skip-path '\.terraform' \
  --output cli --output json --output-file-path "$BUILD/checkov" --compact --quiet \
  >"$BUILD/checkov.log" 2>&1 || status=$?
counts=$(grep -m1 -E '^Passed checks: ' "$BUILD/checkov/results_cli.txt" 2>/dev/null || true)
[[ -n "$counts" ]] || fail checkov "no summary (exit $status)" "$BUILD/checkov.log"
[[ $status -eq 0 ]] || fail checkov "$counts" "$BUILD/checkov/results_cli.txt"
stage checkov "$counts ($((SECONDS - start))s; infra/.build/checkov/)"
