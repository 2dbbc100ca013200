# The bento service: an ECR repository for `bentoml containerize` images and an ECS service that
# runs the tag given as image_tag behind a load balancer. A new tag is a new task definition
# revision; ECS rolls it out task by task, gated by /readyz, and rolls back on its own when the
# new tasks never become ready.

module "repository" {
  source = "../ecr_repository"

  name         = "${var.name}/${var.bento_name}"
  kms_key_arn  = var.kms_key_arn
  force_delete = var.force_destroy
  tags         = var.tags
}

module "service" {
  source = "../ecs_http_service"

  name                     = "${var.name}-bento"
  cluster_arn              = var.cluster_arn
  vpc_id                   = var.vpc_id
  vpc_cidr_block           = var.vpc_cidr_block
  task_subnet_ids          = var.private_subnet_ids
  load_balancer_subnet_ids = var.internal ? var.private_subnet_ids : var.public_subnet_ids
  internal                 = var.internal
  allowed_cidr_blocks      = var.allowed_cidr_blocks
  certificate_arn          = var.certificate_arn
  deletion_protection      = var.deletion_protection

  image               = "${module.repository.url}:${coalesce(var.image_tag, "unset")}"
  container_port      = var.container_port
  environment         = merge({ BENTOML_DO_NOT_TRACK = "True" }, var.environment)
  ecr_repository_arns = [module.repository.arn]

  cpu                        = var.cpu
  memory                     = var.memory
  min_count                  = var.image_tag == null ? 0 : var.min_tasks
  max_count                  = var.image_tag == null ? 0 : var.max_tasks
  health_check_path          = "/readyz" # BentoML answers 200 once the model is loaded
  health_check_grace_seconds = 90
  log_retention_days         = var.log_retention_days
  kms_key_arn                = var.kms_key_arn
  tags                       = var.tags
}

# Two target-tracking policies: the service scales out when either asks for more tasks and in only
# when both allow it.
resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-bento-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = module.service.scalable_target.service_namespace
  scalable_dimension = module.service.scalable_target.scalable_dimension
  resource_id        = module.service.scalable_target.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-bento-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = module.service.scalable_target.service_namespace
  scalable_dimension = module.service.scalable_target.scalable_dimension
  resource_id        = module.service.scalable_target.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_task_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${module.service.load_balancer_arn_suffix}/${module.service.target_group_arn_suffix}"
    }
  }
}
