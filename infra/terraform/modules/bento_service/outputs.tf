output "endpoint_url" {
  description = "Base URL of the bento service (POST /recommend, GET /readyz)."
  value       = module.service.url
}

output "repository_url" {
  description = "ECR repository to push bento images to."
  value       = module.repository.url
}

output "repository_name" {
  description = "Name of the ECR repository."
  value       = module.repository.name
}

output "image" {
  description = "Image the service runs (null until image_tag is set)."
  value       = var.image_tag == null ? null : "${module.repository.url}:${var.image_tag}"
}

output "service_name" {
  description = "ECS service of the bento."
  value       = module.service.service_name
}

output "log_group_name" {
  description = "CloudWatch log group of the bento containers."
  value       = module.service.log_group_name
}
