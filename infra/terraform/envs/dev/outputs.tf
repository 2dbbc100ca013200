output "metaflow_profile_json" {
  description = "Metaflow client configuration: save as ~/.metaflowconfig/config_recops.json."
  value       = module.recops.metaflow_profile_json
}

output "metaflow_job_queues" {
  description = "Batch job queue names by kind."
  value       = module.recops.metaflow_job_queues
}

output "recops_store" {
  description = "RECOPS_STORE: the cycle's store, s3://<bucket>/<prefix>."
  value       = module.recops.recops_store
}

output "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI of the shared tracking server."
  value       = module.recops.mlflow_tracking_uri
}

output "bento_endpoint_url" {
  description = "Base URL of the bento service."
  value       = module.recops.bento_endpoint_url
}

output "client_environment" {
  description = "Plain environment of every flow run (RECOPS_*, METAFLOW_*, MLFLOW_TRACKING_URI)."
  value       = module.recops.client_environment
}

output "client_secrets" {
  description = "Environment flow runs get from Secrets Manager: name => valueFrom."
  value       = module.recops.client_secrets
}

output "bento_api_token_secret_arn" {
  description = "Secret holding RECOPS_API_TOKEN for callers of the bento."
  value       = module.recops.bento_api_token_secret_arn
}

output "image_repositories" {
  description = "ECR repositories for the training, MLflow and bento images."
  value       = module.recops.image_repositories
}

output "prefect" {
  description = "Work pool, API secrets, base job template and ECS job variables for Prefect."
  value       = module.recops.prefect
}

output "github_actions" {
  description = "GitHub Actions roles (deploy: the GitHub environment dev; plan: pull requests) and the account's GitHub OIDC provider; null without github_repository."
  value       = module.recops.github_actions
}
