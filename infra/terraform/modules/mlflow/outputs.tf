output "tracking_uri" {
  description = "MLFLOW_TRACKING_URI for the admitted clients: https://<hostname> with a certificate, else http on the load balancer."
  value       = module.server.url
}

output "client_credentials_secret_arn" {
  description = "Secret (JSON) holding MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, the basic-auth admin."
  value       = module.admin_credentials.arn
}

output "client_credentials" {
  description = "ECS `secrets` for a client: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD => valueFrom."
  value       = module.admin_credentials.value_from
}

output "client_credentials_policy_json" {
  description = "Policy document: read the credentials secret and decrypt it (for roles that fetch it themselves, e.g. Batch jobs through Metaflow's @secrets)."
  value       = data.aws_iam_policy_document.client_credentials.json
}

output "load_balancer_security_group_id" {
  description = "Security group of the tracking server's load balancer."
  value       = module.server.load_balancer_security_group_id
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
