# A Prefect worker for an ECS work pool, as an ECS service. The worker polls the Prefect API
# (server or Cloud) and starts each flow run as its own Fargate task. The API URL and key live in
# Secrets Manager; the platform team puts their values there, so they never enter Terraform state.
# The worker runs its own image (infra/docker/prefect-worker: Prefect with prefect-aws pinned, so
# nothing is installed when it starts). Flow runs get the stack's settings as environment and its
# credentials as ECS `secrets`, through the work pool's base job template (base_job_template).

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  service_name = "${var.name}-prefect-worker"
  partition    = data.aws_partition.current.partition
  region       = data.aws_region.current.name
  cluster_name = split("/", var.cluster_arn)[1]
}

module "image" {
  source = "../ecr_repository"

  name         = "${var.name}/prefect-worker"
  kms_key_arn  = var.kms_key_arn
  force_delete = var.force_destroy
  tags         = var.tags
}

# --- Secrets (values set out of band: see README) ---------------------------------------------

resource "aws_secretsmanager_secret" "api_url" {
  #checkov:skip=CKV2_AWS_57:A URL is not a credential; nothing to rotate.
  name_prefix             = "${var.name}/prefect/api-url-"
  description             = "PREFECT_API_URL for the Prefect worker and its flow runs"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret" "api_key" {
  #checkov:skip=CKV2_AWS_57:The key is issued by Prefect Cloud (or is the server's auth string) and rotated there; the new value is put here with `aws secretsmanager put-secret-value`.
  name_prefix             = "${var.name}/prefect/api-key-"
  description             = "PREFECT_API_KEY for the Prefect worker and its flow runs"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

# --- Logs -------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "worker" {
  name              = "/ecs/${local.service_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "flow_runs" {
  name              = "/ecs/${var.name}-prefect-flow-runs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- Roles ------------------------------------------------------------------------------------

# ECS's own role for the worker task: pull its image, write its logs, read both secrets.
data "aws_iam_policy_document" "worker_execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.worker.arn}:*"]
  }
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # account-wide by design: no resource-level form
    resources = ["*"]
  }
  statement {
    sid       = "PullWorkerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [module.image.arn]
  }
  statement {
    sid       = "ReadApiSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.api_url.arn, aws_secretsmanager_secret.api_key.arn]
  }
  statement {
    sid       = "DecryptSecretsAndImage"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "worker_execution_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-pw-exec-"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "logs-and-secrets"
  policy_json = data.aws_iam_policy_document.worker_execution.json
  tags        = var.tags
}

# ECS's role for flow-run tasks: pull their image, write their logs, read the API key and the
# secrets that flow_run_secrets inject.
data "aws_iam_policy_document" "flow_run_execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.flow_runs.arn, "${aws_cloudwatch_log_group.flow_runs.arn}:*"]
  }
  statement {
    sid       = "ReadApiKeyAndFlowRunSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = concat([aws_secretsmanager_secret.api_key.arn], var.flow_run_secret_arns)
  }
  statement {
    sid       = "DecryptSecretAndImages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  dynamic "statement" {
    for_each = length(var.flow_run_ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"] # account-wide by design: no resource-level form
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = length(var.flow_run_ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullImages"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = var.flow_run_ecr_repository_arns
    }
  }
}

module "flow_run_execution_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-fr-exec-"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "pull-logs-secret"
  policy_json = data.aws_iam_policy_document.flow_run_execution.json
  tags        = var.tags
}

# What a flow run itself may do: only what the caller grants (e.g. launch Metaflow on Batch).
module "flow_run_role" {
  source              = "../iam_role"
  name_prefix         = "${var.name}-flow-run-"
  description         = "Prefect flow runs of ${var.work_pool_name}"
  service             = "ecs-tasks.amazonaws.com"
  managed_policy_arns = var.flow_run_policy_arns
  tags                = var.tags
}

# The worker: start, watch and stop flow-run tasks in this cluster, with the two roles above.
data "aws_iam_policy_document" "worker" {
  statement {
    # Task definitions have no resource-level form for these calls.
    sid = "ManageFlowRunTaskDefinitions"
    actions = [
      "ecs:DeregisterTaskDefinition",
      "ecs:DescribeTaskDefinition",
      "ecs:ListTaskDefinitions",
      "ecs:RegisterTaskDefinition",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "RunFlowRunsInThisCluster"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:*:task-definition/*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }
  statement {
    sid       = "WatchAndStopFlowRuns"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:*:task/${local.cluster_name}/*"]
  }
  statement {
    sid       = "PassFlowRunRoles"
    actions   = ["iam:PassRole"]
    resources = [module.flow_run_role.arn, module.flow_run_execution_role.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "StreamFlowRunLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.flow_runs.arn}:*"]
  }
  statement {
    # The worker resolves the pool's vpc_id and subnets; EC2 Describe calls are account-wide.
    sid       = "DescribeNetwork"
    actions   = ["ec2:DescribeSubnets", "ec2:DescribeVpcs"]
    resources = ["*"]
  }
}

module "worker_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-pw-task-"
  description = "Prefect ECS worker: start flow runs as ECS tasks"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "run-flow-runs"
  policy_json = data.aws_iam_policy_document.worker.json
  tags        = var.tags
}

# --- Worker service ---------------------------------------------------------------------------

resource "aws_ecs_task_definition" "worker" {
  #checkov:skip=CKV_AWS_336:Prefect writes its home (~/.prefect: profiles, the worker's memo store) and temporary files at start; a read-only root needs those paths mapped to volumes and checked against a real worker first.
  family                   = local.service_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = module.worker_execution_role.arn
  task_role_arn            = module.worker_role.arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name                   = "worker"
    image                  = "${module.image.url}:${coalesce(var.image_tag, "unset")}"
    essential              = true
    readonlyRootFilesystem = false
    command                = ["prefect", "worker", "start", "--pool", var.work_pool_name, "--type", "ecs"]
    environment = [
      { name = "AWS_DEFAULT_REGION", value = local.region },
    ]
    secrets = [
      { name = "PREFECT_API_URL", valueFrom = aws_secretsmanager_secret.api_url.arn },
      { name = "PREFECT_API_KEY", valueFrom = aws_secretsmanager_secret.api_key.arn },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.worker.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }])
}

resource "aws_ecs_service" "worker" {
  name             = local.service_name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.worker.arn
  desired_count    = var.image_tag == null ? 0 : var.worker_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"
  tags             = var.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.worker_security_group_ids
    assign_public_ip = false
  }
}

# --- The work pool's base job template --------------------------------------------------------

# prefect-aws's own default template (ecs-base-job-template.json: ECSWorker.get_default_base_job_
# template() of the version the worker image pins), with this stack's values as the variables'
# defaults and the flow-run container's environment and secrets in the task definition. Secrets
# can only go there: the ECS job variables have none but the Prefect API key. Deployments still
# override any variable (image, env, cpu...) in prefect.yaml; `env` adds to this environment.
locals {
  default_template = jsondecode(file("${path.module}/ecs-base-job-template.json"))

  job_variables = {
    cluster                    = var.cluster_arn
    vpc_id                     = var.vpc_id
    launch_type                = "FARGATE"
    cpu                        = var.flow_run_cpu
    memory                     = var.flow_run_memory
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
      securityGroups = var.flow_run_security_group_ids
      assignPublicIp = "DISABLED"
    }
  }

  template_task_definition = local.default_template.job_configuration.task_definition
  flow_run_container = merge(local.template_task_definition.containerDefinitions[0], {
    environment = [for name, value in var.flow_run_environment : { name = name, value = value }]
    secrets     = [for name, value_from in var.flow_run_secrets : { name = name, valueFrom = value_from }]
  })

  base_job_template = {
    job_configuration = merge(local.default_template.job_configuration, {
      task_definition = merge(local.template_task_definition, {
        containerDefinitions = [local.flow_run_container]
      })
    })
    variables = merge(local.default_template.variables, {
      properties = {
        for variable, schema in local.default_template.variables.properties :
        variable => merge(schema, { for name, value in local.job_variables : "default" => value if name == variable })
      }
    })
  }
}
