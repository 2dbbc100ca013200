#!/usr/bin/env bash
# The continuous-delivery steps, one per command. .github/workflows/cd.yml runs them through
# `make cd-<step> STACK=<env>`, and a person with the same AWS access runs the same commands: no
# step exists only in the workflow.
#   plan ENV            terraform init (S3 state) + plan -out, for the images this commit builds;
#                       the plan and its text land in infra/.build/cd/ENV/ (PLAN_READ_ONLY=1:
#                       -lock=false -refresh=false, for the pull request's read-only role)
#   apply ENV           terraform apply of exactly that saved plan (the one the reviewer saw)
#   image-training ENV  docker build infra/docker/training, push <training repo>:<git sha>
#   image-bento ENV     recops bento build --alias champion, bentoml containerize, push <bento repo>:v<N>
#   prefect-deploy ENV  recops schedule check, then prefect deploy --all to the ECS work pool
#   deploy ENV          recops deploy: the ECS service answers with the champion
#   record ENV          recops provenance --record: the release's chain, one object in the store
# Needs: AWS credentials (CD: GitHub's OIDC role of the environment, from Terraform's
# github_actions output), TF_STATE_BUCKET, AWS_REGION; for the image and deploy steps the applied
# environment's outputs. Each step writes what it made under infra/.build/cd/ENV/ (a digest, a
# tag), for the next step and for the provenance record.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
step=${1:?usage: infra/cd.sh STEP ENV (see the header)}
env=${2:?usage: infra/cd.sh STEP ENV}
dir=$REPO/infra/terraform/envs/$env
[[ -d "$dir" ]] || { echo "no such environment: infra/terraform/envs/$env" >&2; exit 2; }
out=$REPO/infra/.build/cd/$env
mkdir -p "$out"
sha=${GITHUB_SHA:-$(git -C "$REPO" rev-parse HEAD)}
export TF_IN_AUTOMATION=1 TF_INPUT=0

say() { printf '%s %-15s %s\n' "$(date -u +%H:%M:%S)" "$step" "$*"; }
need() { [[ -n "${!1:-}" ]] || { echo "$step: $1 is not set ($2)" >&2; exit 2; }; }
tf_init() {
  need TF_STATE_BUCKET "the S3 bucket holding Terraform's state"
  need AWS_REGION "the region of the state bucket and the stack"
  terraform -chdir="$dir" init -input=false -no-color \
    -backend-config="bucket=$TF_STATE_BUCKET" -backend-config="key=recops/$env.tfstate" \
    -backend-config="region=$AWS_REGION" >"$out/init.log"
}
output() { terraform -chdir="$dir" output -json "$1"; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }  # JSON, key
# The environment a flow run gets (store, MLflow, Metaflow on Batch, deploy target), exported here.
client_environment() {
  eval "$(output client_environment | python3 -c 'import json,shlex,sys
for k, v in json.load(sys.stdin).items(): print(f"export {k}={shlex.quote(str(v))}")')"
}
secret_json() { aws secretsmanager get-secret-value --secret-id "$1" --query SecretString --output text; }
mlflow_credentials() {  # the registry's basic-auth user, from the secret Terraform made
  client_environment
  need RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN "from terraform output client_environment"
  local credentials
  credentials=$(secret_json "$RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN")
  MLFLOW_TRACKING_USERNAME=$(field "$credentials" MLFLOW_TRACKING_USERNAME)
  MLFLOW_TRACKING_PASSWORD=$(field "$credentials" MLFLOW_TRACKING_PASSWORD)
  export MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD
}
prefect_api() {  # PREFECT_API_URL and _KEY, from the secrets named by terraform output prefect
  local prefect_out
  prefect_out=$(output prefect)
  PREFECT_API_URL=$(secret_json "$(field "$prefect_out" api_url_secret_arn)")
  PREFECT_API_KEY=$(secret_json "$(field "$prefect_out" api_key_secret_arn)")
  export PREFECT_API_URL PREFECT_API_KEY
}
push() {  # push IMAGE:TAG and record its digest in $out/$2
  docker push "$1" >"$out/$2.push.log"
  docker inspect --format '{{index .RepoDigests 0}}' "$1" | tee "$out/$2"
}

case $step in
plan)
  tf_init
  # A pull request's plan runs on the read-only plan role: no state lock, no refresh (refresh
  # reads the stack's generated secrets back, which that role may not); CI sets PLAN_READ_ONLY=1.
  read_only=()
  [[ "${PLAN_READ_ONLY:-0}" == 1 ]] && read_only=(-lock=false -refresh=false)
  terraform -chdir="$dir" plan -input=false -no-color -out="$out/plan.tfplan" \
    ${read_only[@]+"${read_only[@]}"} -var "training_image_tag=$sha" >"$out/plan.log"
  terraform -chdir="$dir" show -no-color "$out/plan.tfplan" >"$out/plan.txt"
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then  # on GitHub: the plan, for whoever approves the apply
    printf '### terraform plan: %s\n\n```\n%s\n```\n' "$env" "$(cat "$out/plan.txt")" >>"$GITHUB_STEP_SUMMARY"
  fi
  say "$(grep -E '^(Plan:|No changes)' "$out/plan.log" || echo 'see plan.txt')"
  ;;
apply)
  [[ -f "$out/plan.tfplan" ]] || { echo "apply: no saved plan at $out/plan.tfplan (run plan first)" >&2; exit 2; }
  tf_init
  terraform -chdir="$dir" apply -input=false -no-color "$out/plan.tfplan" | tee "$out/apply.log"
  terraform -chdir="$dir" output -json >"$out/outputs.json"
  ;;
image-training)
  tf_init
  repo=$(field "$(output image_repositories)" training)
  docker build -f "$REPO/infra/docker/training/Dockerfile" --build-arg GIT_COMMIT="$sha" -t "$repo:$sha" "$REPO"
  say "pushed $(push "$repo:$sha" training-image)"
  ;;
image-bento)
  tf_init
  mlflow_credentials
  tag=$(recops bento build --alias champion | tail -1)
  version=$(python3 -c 'from recops import registry; print(registry.get_version("champion").version)')
  repo=$(field "$(output image_repositories)" bento)
  bentoml containerize "$tag" -t "$repo:v$version"
  echo "$tag" >"$out/bento-tag"
  say "pushed $(push "$repo:v$version" bento-image) (bento $tag, model version $version)"
  ;;
prefect-deploy)
  tf_init
  prefect_api
  [[ -f "$out/training-image" ]] || { echo "prefect-deploy: run image-training first ($out/training-image)" >&2; exit 2; }
  RECOPS_FLOW_IMAGE=$(cat "$out/training-image")
  export RECOPS_FLOW_IMAGE
  recops schedule check --prefect-yaml "$REPO/prefect.ecs.yaml"
  (cd "$REPO" && prefect --no-prompt deploy --all --prefect-file prefect.ecs.yaml) | tee "$out/prefect-deploy.log"
  ;;
deploy)
  tf_init
  mlflow_credentials  # and the client environment: the store, the ECS target
  recops deploy --timeout 900 | tee "$out/deploy.log"
  ;;
record)
  tf_init
  mlflow_credentials
  prefect_api
  recops provenance --record --stack "$env" --build-dir "$out" --prefect-file "$REPO/prefect.ecs.yaml"
  ;;
*)
  echo "unknown step: $step (plan, apply, image-training, image-bento, prefect-deploy, deploy, record)" >&2
  exit 2
  ;;
esac
