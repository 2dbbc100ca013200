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
  description = "prefect-aws ECS job variables for this pool's deployments (prefect.yaml `work_pool.job_variables`, or the pool's base job template defaults)."
  value = {
    cluster                    = var.cluster_arn
    vpc_id                     = var.vpc_id
    launch_type                = "FARGATE"
    execution_role_arn         = module.flow_run_execution_role.arn
    task_role_arn              = module.flow_run_role.arn
    prefect_api_key_secret_arn = aws_secretsmanager_secret.api_key.arn
    configure_cloudwatch_logs  = true
    cloudwatch_logs_options = {
      awslogs-group  = aws_cloudwatch_log_group.flow_runs.name
      awslogs-region = local.region
    }
    network_configuration = {
      subnets        = var.subnet_ids
      securityGroups = var.security_group_ids
      assignPublicIp = "DISABLED"
    }
  }
}
