output "kms_key_arn" {
  description = "The test key."
  value       = aws_kms_key.this.arn
}

output "vpc_id" {
  description = "The VPC."
  value       = module.network.vpc_id
}

output "s3_endpoint_id" {
  description = "The S3 gateway endpoint."
  value       = module.network.s3_endpoint_id
}

output "workload_security_group_ids" {
  description = "Security group per workload kind."
  value       = module.network.workload_security_group_ids
}

output "store" {
  description = "The recops store: RECOPS_STORE and its bucket."
  value = {
    uri                   = module.store.uri
    bucket                = module.store.bucket
    read_write_policy_arn = module.store.read_write_policy_arn
  }
}

output "secrets" {
  description = "Generated secrets: the MLflow credentials (JSON) and the bento API token (plain)."
  value = {
    mlflow_credentials_arn        = module.mlflow_credentials.arn
    mlflow_credentials_value_from = module.mlflow_credentials.value_from
    bento_api_token_arn           = module.bento_api_token.arn
  }
}

output "datastore_bucket" {
  description = "Metaflow's datastore bucket."
  value       = module.metaflow.datastore_bucket
}

output "compute_environment_arns" {
  description = "Batch compute environments by kind."
  value       = module.metaflow.compute_environment_arns
}

output "job_queue_names" {
  description = "Batch job queues by kind."
  value       = module.metaflow.job_queue_names
}

output "job_role_arn" {
  description = "Role of Metaflow's Batch jobs."
  value       = module.metaflow.job_role_arn
}

output "instance_role_name" {
  description = "Role of the Batch instances."
  value       = module.metaflow.instance_role_name
}

output "metaflow_profile_json" {
  description = "Metaflow client configuration."
  value       = module.metaflow.metaflow_profile_json
}

output "repositories" {
  description = "ECR repositories: training image, Prefect worker and bento."
  value = {
    training       = module.metaflow.training_image_repository_url
    prefect_worker = module.prefect_worker.image_repository_url
    bento          = module.bento_repository.url
  }
}

output "prefect" {
  description = "Prefect worker service, secrets and job variables."
  value = {
    cluster            = aws_ecs_cluster.this.name
    service            = module.prefect_worker.service_name
    api_url_secret_arn = module.prefect_worker.api_url_secret_arn
    api_key_secret_arn = module.prefect_worker.api_key_secret_arn
    job_variables      = module.prefect_worker.job_variables
    base_job_template  = module.prefect_worker.base_job_template
    flow_run_role_arn  = module.prefect_worker.flow_run_role_arn
  }
}
