output "metaflow_profile_json" {
  description = "Metaflow client configuration: save as ~/.metaflowconfig/config_recops.json."
  value       = module.recops.metaflow_profile_json
}

output "metaflow_job_queues" {
  description = "Batch job queue names by kind."
  value       = module.recops.metaflow_job_queues
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
  description = "METAFLOW_* and MLFLOW_TRACKING_URI for clients."
  value       = module.recops.client_environment
}

output "image_repositories" {
  description = "ECR repositories for the training, MLflow and bento images."
  value       = module.recops.image_repositories
}

output "prefect" {
  description = "Work pool, API secrets and ECS job variables for Prefect."
  value       = module.recops.prefect
}
