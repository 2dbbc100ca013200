output "url" {
  description = "Base URL of the service (http or https on the load balancer's DNS name)."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
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
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
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
  description = "Application Auto Scaling target of the service, for scaling policies."
  value = {
    service_namespace  = aws_appautoscaling_target.this.service_namespace
    scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
    resource_id        = aws_appautoscaling_target.this.resource_id
  }
}

output "log_group_name" {
  description = "CloudWatch log group of the containers."
  value       = aws_cloudwatch_log_group.this.name
}
