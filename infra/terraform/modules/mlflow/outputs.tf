output "tracking_uri" {
  description = "MLFLOW_TRACKING_URI for clients inside the VPC (or connected to it)."
  value       = module.server.url
}

output "artifact_bucket" {
  description = "Bucket of the MLflow artifacts (written by the server only)."
  value       = module.artifacts.id
}

output "image_repository_url" {
  description = "ECR repository for the MLflow server image (docker build infra/docker/mlflow)."
  value       = module.image.url
}

output "db_endpoint" {
  description = "Address of the PostgreSQL backend store."
  value       = aws_db_instance.this.address
}

output "db_secret_arn" {
  description = "Secrets Manager secret with the database user name and password (managed and rotated by RDS)."
  value       = local.db_secret
}

output "service_name" {
  description = "ECS service of the MLflow server."
  value       = module.server.service_name
}
