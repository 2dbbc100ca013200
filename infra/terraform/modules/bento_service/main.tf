# The bento service: an ECR repository for serving images and an ECS service behind a load
# balancer that only named clients may call, with an API token from Secrets Manager. Terraform
# creates the service with its first image (image_tag); from then on the image is the deployer's
# (recops' ECS backend, holding deployer_policy_arn): it registers a revision of the service's task
# definition with the new image and updates the service, and an apply never rolls that back. ECS
# rolls each revision out task by task, gated by /readyz, and its circuit breaker rolls back a
# revision whose tasks never become ready.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition    = data.aws_partition.current.partition
  region       = data.aws_region.current.name
  account_id   = split(":", module.repository.arn)[4] # no sts call: a plan stays offline
  cluster_name = split("/", var.cluster_arn)[1]
  service_arn  = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${local.cluster_name}/${module.service.service_name}"
}

module "repository" {
  source = "../ecr_repository"

  name         = "${var.name}/${var.bento_name}"
  kms_key_arn  = var.kms_key_arn
  force_delete = var.force_destroy
  tags         = var.tags
}

# The bearer token every request but the health probes must carry (recops.serving.auth).
module "api_token" {
  source = "../generated_secret"

  name_prefix = "${var.name}/bento/api-token-"
  description = "RECOPS_API_TOKEN of the bento service: clients send Authorization: Bearer <token>"
  kms_key_arn = var.kms_key_arn
  generation  = var.api_token_generation
  tags        = var.tags
}

# With a store: the service writes its served-list log there and reads the trending lists
# (recops.serving.served_log, recops.data.trending), as the task role below allows, no more.
module "task_role" {
  count = var.store_uri == null ? 0 : 1

  source      = "../iam_role"
  name_prefix = "${var.name}-bento-task-"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "served-log-and-trending"
  policy_json = var.store_policy_json
  tags        = var.tags
}

module "service" {
  source = "../ecs_http_service"

  name                     = "${var.name}-bento"
  cluster_arn              = var.cluster_arn
  vpc_id                   = var.vpc_id
  vpc_cidr_block           = var.vpc_cidr_block
  allow_vpc_egress         = false # serving calls no service in the VPC (MLflow included)
  task_subnet_ids          = var.private_subnet_ids
  load_balancer_subnet_ids = var.internal ? var.private_subnet_ids : var.public_subnet_ids
  internal                 = var.internal
  allowed_cidr_blocks      = var.allowed_cidr_blocks
  allowed_security_groups  = var.allowed_security_groups
  certificate_arn          = var.certificate_arn
  hostname                 = var.hostname
  dns_zone_id              = var.dns_zone_id
  deletion_protection      = var.deletion_protection

  create_service                 = var.image_tag != null
  ignore_task_definition_changes = true
  image                          = "${module.repository.url}:${coalesce(var.image_tag, "unset")}"
  container_port                 = var.container_port
  environment = merge(
    { BENTOML_DO_NOT_TRACK = "True" },
    var.require_api_token ? { RECOPS_API_TOKEN_REQUIRED = "1" } : {},
    var.store_uri == null ? { RECOPS_SERVED_LOG = "0", RECOPS_TRENDING = "0" } : { RECOPS_STORE = var.store_uri },
    var.environment,
  )
  task_role_arn       = var.store_uri == null ? null : module.task_role[0].arn
  secrets             = { RECOPS_API_TOKEN = module.api_token.arn }
  secret_arns         = [module.api_token.arn]
  ecr_repository_arns = [module.repository.arn]

  cpu                        = var.cpu
  memory                     = var.memory
  min_count                  = var.min_tasks
  max_count                  = var.max_tasks
  health_check_path          = "/readyz" # 200 once the model is loaded; open without the token
  health_check_grace_seconds = 90
  log_retention_days         = var.log_retention_days
  kms_key_arn                = var.kms_key_arn
  tags                       = var.tags
}

# Stacks applied before the deployer owned the image hold the service as aws_ecs_service.this.
moved {
  from = module.service.aws_ecs_service.this
  to   = module.service.aws_ecs_service.externally_deployed[0]
}

# --- Autoscaling ----------------------------------------------------------------------------------

# Two target-tracking policies: the service scales out when either asks for more tasks and in only
# when both allow it.
resource "aws_appautoscaling_policy" "cpu" {
  count = var.image_tag == null ? 0 : 1

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
  count = var.image_tag == null ? 0 : 1

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

# --- Who may deploy a new image -------------------------------------------------------------------

# Exactly what recops' ECS backend calls (recops.serving.ecs): find <repository>:v<N> in ECR, copy a
# revision of the service's task definition with that image, register it (tagged with the model
# version), update this service alone, and wait for the rollout.
data "aws_iam_policy_document" "deployer" {
  statement {
    sid       = "FindServingImage"
    actions   = ["ecr:DescribeImages", "ecr:DescribeRepositories"]
    resources = [module.repository.arn]
  }
  statement {
    sid       = "RolloutThisService"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [local.service_arn]
  }
  statement {
    # Task definitions: these calls have no resource-level form.
    sid       = "ReadAndRegisterTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid       = "TagRevisionsWhenRegistering"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${module.service.task_definition_family}:*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }
  statement {
    # A registered revision names the service's roles; passing any other role is refused.
    sid       = "PassServiceRoles"
    actions   = ["iam:PassRole"]
    resources = compact([module.service.execution_role_arn, module.service.task_role_arn])
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "deployer" {
  name_prefix = "${var.name}-bento-deployer-"
  description = "Roll a new serving image out to ${module.service.service_name} (recops' ECS deploy backend)"
  policy      = data.aws_iam_policy_document.deployer.json
  tags        = var.tags
}
