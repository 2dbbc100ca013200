output "url" {
  description = "Base URL of the service: https://<hostname> with a certificate, else http:// on hostname or the load balancer's DNS name."
  value       = "${local.https ? "https" : "http"}://${local.host}"
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "load_balancer_arn_suffix" {
  description = "ARN suffix of the load balancer (CloudWatch dimension)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "ARN suffix of the target group (CloudWatch dimension)."
  value       = aws_lb_target_group.this.arn_suffix
}

output "service_name" {
  description = "Name of the ECS service (known before it exists: it is var.name)."
  value       = local.service_name
}

output "container_name" {
  description = "Name of the container in the task definition (the one behind the load balancer)."
  value       = local.container_name
}

output "task_definition_family" {
  description = "Family of the service's task definition (revisions a deployer registers join it)."
  value       = aws_ecs_task_definition.this.family
}

output "task_role_arn" {
  description = "Role the application runs as (null when it calls no AWS API)."
  value       = var.task_role_arn
}

output "load_balancer_security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.lb.id
}

output "task_security_group_id" {
  description = "Security group of the tasks (allow it into a database)."
  value       = aws_security_group.task.id
}

output "execution_role_arn" {
  description = "Execution role of the tasks."
  value       = module.execution_role.arn
}

output "scalable_target" {
  description = "Application Auto Scaling target of the service, for scaling policies (null while create_service is false)."
  value = var.create_service ? {
    service_namespace  = aws_appautoscaling_target.this[0].service_namespace
    scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
    resource_id        = aws_appautoscaling_target.this[0].resource_id
  } : null
}

output "log_group_name" {
  description = "CloudWatch log group of the containers."
  value       = aws_cloudwatch_log_group.this.name
}
