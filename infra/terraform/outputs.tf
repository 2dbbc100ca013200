output "metaflow_profile_json" {
  description = "Metaflow client configuration (as terraform-aws-metaflow's output): save as ~/.metaflowconfig/config_recops.json, then `export METAFLOW_PROFILE=recops`."
  value       = module.metaflow.metaflow_profile_json
}

output "metaflow_job_queues" {
  description = "Batch job queue names by kind (gpu is the profile's default; `--with batch:queue=<cpu>` for CPU-only runs)."
  value       = module.metaflow.job_queue_names
}

output "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI of the shared tracking server and registry (reachable from the VPC and client_cidr_blocks)."
  value       = module.mlflow.tracking_uri
}

output "bento_endpoint_url" {
  description = "Base URL of the bento service: POST <url>/recommend."
  value       = module.bento_service.endpoint_url
}

output "client_environment" {
  description = "Environment variables that point recops, Metaflow and MLflow clients at this stack (`terraform output -json client_environment`)."
  value = merge(module.metaflow.metaflow_profile, {
    MLFLOW_TRACKING_URI = module.mlflow.tracking_uri
  })
}

output "image_repositories" {
  description = "ECR repositories to push to: the training image (Batch), the MLflow server and the bento."
  value = {
    training = module.metaflow.training_image_repository_url
    mlflow   = module.mlflow.image_repository_url
    bento    = module.bento_service.repository_url
  }
}

output "prefect" {
  description = "What the Prefect side needs: the work pool, the secrets to fill with PREFECT_API_URL and PREFECT_API_KEY, and the ECS job variables for the pool's deployments."
  value = {
    work_pool          = module.prefect_worker.work_pool_name
    api_url_secret_arn = module.prefect_worker.api_url_secret_arn
    api_key_secret_arn = module.prefect_worker.api_key_secret_arn
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
