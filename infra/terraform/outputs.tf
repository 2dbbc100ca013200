output "metaflow_profile_json" {
  description = "Metaflow client configuration (as terraform-aws-metaflow's output): save as ~/.metaflowconfig/config_recops.json, then `export METAFLOW_PROFILE=recops`."
  value       = module.metaflow.metaflow_profile_json
}

output "metaflow_job_queues" {
  description = "Batch job queue names by kind (cpu is the profile's default; the GPU queue is RECOPS_BATCH_GPU_QUEUE)."
  value       = module.metaflow.job_queue_names
}

output "recops_store" {
  description = "RECOPS_STORE: the cycle's store, s3://<bucket>/<prefix>."
  value       = module.store.uri
}

output "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI of the shared tracking server and registry (https://<mlflow_hostname> with a certificate); basic auth, see client_secrets."
  value       = module.mlflow.tracking_uri
}

output "bento_endpoint_url" {
  description = "Base URL of the bento service: POST <url>/recommend with Authorization: Bearer <RECOPS_API_TOKEN>."
  value       = module.bento_service.endpoint_url
}

output "client_environment" {
  description = "Plain environment of every flow run, and of a person or CI running the cycle: the store, the deploy target, Metaflow on Batch, MLflow (`terraform output -json client_environment`)."
  value       = local.client_environment
}

output "client_secrets" {
  description = "Environment that flow runs get from Secrets Manager (ECS `secrets`): name => valueFrom (<secret ARN>:<json key>::). Others read it with `aws secretsmanager get-secret-value`."
  value       = local.client_secrets
}

output "bento_api_token_secret_arn" {
  description = "Secret holding RECOPS_API_TOKEN, the bearer token callers of the bento send."
  value       = module.bento_service.api_token_secret_arn
}

output "image_repositories" {
  description = "ECR repositories to push to: the training image (Batch), the MLflow server, the Prefect worker and the bento."
  value = {
    training       = module.metaflow.training_image_repository_url
    mlflow         = module.mlflow.image_repository_url
    prefect_worker = module.prefect_worker.image_repository_url
    bento          = module.bento_service.repository_url
  }
}

output "prefect" {
  description = "What the Prefect side needs: the work pool, the secrets to fill with PREFECT_API_URL and PREFECT_API_KEY, the pool's base job template (flow runs' environment and secrets included) and its job variables."
  value = {
    work_pool          = module.prefect_worker.work_pool_name
    api_url_secret_arn = module.prefect_worker.api_url_secret_arn
    api_key_secret_arn = module.prefect_worker.api_key_secret_arn
    base_job_template  = module.prefect_worker.base_job_template
    job_variables      = module.prefect_worker.job_variables
  }
}

output "metaflow_client_policy_arn" {
  description = "Managed policy to attach to people and CI who launch Metaflow runs on this stack."
  value       = module.metaflow.client_policy_arn
}

output "kms_key_arn" {
  description = "The stack's KMS key."
  value       = aws_kms_key.this.arn
}

output "github_actions" {
  description = "Roles for GitHub Actions (role-to-assume of aws-actions/configure-aws-credentials) and the account's GitHub OIDC provider; null without github_repository."
  value = length(module.github_oidc) == 0 ? null : {
    deploy_role_arn   = module.github_oidc[0].deploy_role_arn
    plan_role_arn     = module.github_oidc[0].plan_role_arn
    oidc_provider_arn = module.github_oidc[0].oidc_provider_arn
  }
}
