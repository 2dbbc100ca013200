output "endpoint_url" {
  description = "Base URL of the bento service (POST /recommend with the API token, GET /readyz)."
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

output "repository_arn" {
  description = "ARN of the ECR repository (CI pushes bento images to it)."
  value       = module.repository.arn
}

output "image" {
  description = "Image the service was created with (null until image_tag is set); later images are the deployer's."
  value       = var.image_tag == null ? null : "${module.repository.url}:${var.image_tag}"
}

output "service_name" {
  description = "ECS service of the bento (RECOPS_ECS_SERVICE); it exists once image_tag is set."
  value       = module.service.service_name
}

output "container_name" {
  description = "Container of the serving image in the service's task definition (RECOPS_ECS_CONTAINER)."
  value       = module.service.container_name
}

output "task_definition_family" {
  description = "Task definition family of the service; the deployer's revisions join it."
  value       = module.service.task_definition_family
}

output "service_arn" {
  description = "ARN of the ECS service (known before the service exists)."
  value       = local.service_arn
}

output "task_role_arns" {
  description = "The roles a revision of the service's task definition names (execution role, and task role with a store): what a deployer may pass to ECS."
  value       = compact([module.service.execution_role_arn, module.service.task_role_arn])
}

output "api_token_secret_arn" {
  description = "Secret holding RECOPS_API_TOKEN, the bearer token clients send."
  value       = module.api_token.arn
}

output "deployer_policy_arn" {
  description = "Managed policy to roll a new image out to this service (the cycle's flow runs, CI)."
  value       = aws_iam_policy.deployer.arn
}

output "load_balancer_security_group_id" {
  description = "Security group of the service's load balancer."
  value       = module.service.load_balancer_security_group_id
}

output "log_group_name" {
  description = "CloudWatch log group of the bento containers."
  value       = module.service.log_group_name
}
