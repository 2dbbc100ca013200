output "service_name" {
  description = "ECS service of the worker."
  value       = aws_ecs_service.worker.name
}

output "work_pool_name" {
  description = "Work pool the worker polls (create it with `prefect work-pool create --type ecs`)."
  value       = var.work_pool_name
}

output "api_url_secret_arn" {
  description = "Secret to put PREFECT_API_URL into."
  value       = aws_secretsmanager_secret.api_url.arn
}

output "api_key_secret_arn" {
  description = "Secret to put PREFECT_API_KEY into."
  value       = aws_secretsmanager_secret.api_key.arn
}

output "flow_run_role_arn" {
  description = "Role that flow runs run as."
  value       = module.flow_run_role.arn
}

output "job_variables" {
  description = "prefect-aws ECS job variables of this pool (the defaults that base_job_template holds): for prefect.yaml `work_pool.job_variables` when a pool was created without the template."
  value       = local.job_variables
}

output "base_job_template" {
  description = "Base job template for the work pool: `prefect work-pool create <pool> --type ecs --base-job-template <file>` (or `prefect work-pool update`). prefect-aws's default with this stack's job variables as defaults, and flow_run_environment and flow_run_secrets on the flow-run container."
  value       = local.base_job_template
}

output "flow_run_environment" {
  description = "Plain environment of every flow run (as given in flow_run_environment)."
  value       = var.flow_run_environment
}

output "flow_run_secrets" {
  description = "Environment variables of every flow run that ECS reads from Secrets Manager at start: name => valueFrom."
  value       = var.flow_run_secrets
}

output "image_repository_url" {
  description = "ECR repository for the worker image (docker build infra/docker/prefect-worker)."
  value       = module.image.url
}

output "image_repository_arn" {
  description = "ARN of the worker image repository."
  value       = module.image.arn
}
