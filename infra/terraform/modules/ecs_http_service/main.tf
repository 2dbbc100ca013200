# One Fargate service behind an Application Load Balancer: the shape shared by the MLflow server
# and the bento service. The task count always goes through Application Auto Scaling (a floor and
# a ceiling), so callers can attach scaling policies and Terraform never fights them over it.
# The load balancer admits the clients it is given by name (security groups) or range (CIDR
# blocks); with a certificate it serves HTTPS under `hostname` and redirects plain HTTP.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  https          = var.certificate_arn != null
  container_name = "app"
  ports          = local.https ? [443, 80] : [80]
  host           = coalesce(var.hostname, aws_lb.this.dns_name)
  service_name   = var.name
}

# --- Network ----------------------------------------------------------------------------------

resource "aws_security_group" "lb" {
  name_prefix = "${var.name}-lb-"
  description = "Load balancer of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-lb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "task" {
  name_prefix = "${var.name}-task-"
  description = "Tasks of ${var.name}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-task" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "lb_client_ranges" {
  for_each = {
    for pair in setproduct(var.allowed_cidr_blocks, local.ports) :
    "${pair[0]} port ${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }

  security_group_id = aws_security_group.lb.id
  description       = "Clients in ${each.value.cidr} on port ${each.value.port}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

# Keyed by the callers' names, which are known at plan time (the group IDs are not, on a first apply).
resource "aws_vpc_security_group_ingress_rule" "lb_client_groups" {
  for_each = {
    for pair in setproduct(keys(var.allowed_security_groups), local.ports) :
    "${pair[0]} port ${pair[1]}" => { client = pair[0], port = pair[1] }
  }

  security_group_id            = aws_security_group.lb.id
  description                  = "${each.value.client} on port ${each.value.port}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = var.allowed_security_groups[each.value.client]
}

resource "aws_vpc_security_group_egress_rule" "lb_to_task" {
  security_group_id            = aws_security_group.lb.id
  description                  = "Forward to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.task.id
}

resource "aws_vpc_security_group_ingress_rule" "task_from_lb" {
  security_group_id            = aws_security_group.task.id
  description                  = "Requests and health checks from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_egress_rule" "task_https" {
  security_group_id = aws_security_group.task.id
  description       = "HTTPS to AWS APIs and registries (ECR, Secrets Manager, S3, CloudWatch)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "task_in_vpc" {
  count = var.allow_vpc_egress ? 1 : 0

  security_group_id = aws_security_group.task.id
  description       = "TCP inside the VPC (databases, other services)"
  ip_protocol       = "tcp"
  from_port         = 0
  to_port           = 65535
  cidr_ipv4         = var.vpc_cidr_block
}

# --- Load balancer ----------------------------------------------------------------------------

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_91:Access logs need an SSE-S3 bucket with an ELB delivery policy per region; request metrics are in CloudWatch and the service logs each request.
  #checkov:skip=CKV_AWS_150:Deletion protection is var.deletion_protection: on in prod, off in dev so that the environment can be torn down.
  #checkov:skip=CKV2_AWS_28:Internal by default (reachable from the VPC only); an internet-facing deployment puts its WAF in front at the edge, outside this module.
  name                       = var.name
  internal                   = var.internal
  load_balancer_type         = "application"
  subnets                    = var.load_balancer_subnet_ids
  security_groups            = [aws_security_group.lb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  tags                       = var.tags

  lifecycle {
    precondition {
      condition     = var.internal || var.certificate_arn != null
      error_message = "An internet-facing load balancer needs certificate_arn: plain HTTP is allowed only inside the VPC."
    }
    precondition {
      condition     = var.certificate_arn == null || var.hostname != null
      error_message = "certificate_arn needs hostname, the name the certificate covers and clients use: TLS verification fails on the load balancer's own DNS name."
    }
  }
}

# The name clients use, when the caller keeps its DNS zone in Route 53 (a private hosted zone for
# an internal load balancer); otherwise the caller points `hostname` at load_balancer_dns_name.
resource "aws_route53_record" "this" {
  count = var.hostname != null && var.dns_zone_id != null ? 1 : 0

  zone_id = var.dns_zone_id
  name    = var.hostname
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer (HTTPS with certificate_arn); from there to the task is private-subnet traffic that only the load balancer's security group may send, and mlflow and bentoml serve plain HTTP.
  name_prefix          = "rc-"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30 # in-flight requests finish; a rollout does not wait five minutes per task
  tags                 = merge(var.tags, { Name = var.name })

  health_check {
    path                = var.health_check_path
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Plain HTTP only without a certificate, which the aws_lb precondition allows on an internal load balancer alone; with certificate_arn this listener redirects to HTTPS.
  #checkov:skip=CKV_AWS_103:Same listener: TLS applies to the HTTPS listener, whose ssl_policy is TLS 1.2/1.3 (var.ssl_policy, validated).
  #checkov:skip=CKV2_AWS_20:Redirects to HTTPS whenever certificate_arn is set; see CKV_AWS_2.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = var.tags

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

# --- Task -------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# The execution role is ECS's, not the application's: pull the image, write logs, read secrets.
data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"] # account-wide by design: no resource-level form
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.ecr_repository_arns) > 0 ? [1] : []
    content {
      sid       = "PullImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = var.ecr_repository_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.secret_arns
    }
  }

  statement {
    sid       = "DecryptWithStackKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "execution_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-exec-"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "pull-log-secrets"
  policy_json = data.aws_iam_policy_document.execution.json
  tags        = var.tags
}

resource "aws_ecs_task_definition" "this" {
  #checkov:skip=CKV_AWS_336:The servers write caches and temporary files under their home and /tmp (MLflow's artifact proxy, BentoML's Prometheus directory); a read-only root needs each path mapped to a volume first.
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = module.execution_role.arn
  task_role_arn            = var.task_role_arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name                   = local.container_name
    image                  = var.image
    essential              = true
    command                = var.command
    readonlyRootFilesystem = false
    portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
    environment            = [for k, v in var.environment : { name = k, value = v }]
    secrets                = [for k, v in var.secrets : { name = k, valueFrom = v }]
    stopTimeout            = 30
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "app"
      }
    }
  }])
}

# Two forms of the one service, so that the owner of its task definition is a choice: Terraform
# (a change registers a revision and rolls it out), or a deployer outside Terraform
# (ignore_task_definition_changes: the service keeps the revision the deployer set, and an apply
# registers Terraform's revision without rolling the service back to it). `lifecycle` cannot
# depend on a variable, hence two resources with the same arguments. A stack applied before
# holds the service as aws_ecs_service.this, which Terraform reads as this[0]; bento_service
# moves it to externally_deployed[0] with a moved block.
locals {
  service_count = var.create_service ? 1 : 0
}

resource "aws_ecs_service" "this" {
  count = var.ignore_task_definition_changes ? 0 : local.service_count

  name                              = local.service_name
  cluster                           = var.cluster_arn
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.min_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = var.health_check_grace_seconds
  propagate_tags                    = "SERVICE"
  # A rollout starts new tasks before stopping old ones, and rolls back by itself when they
  # never pass the health check.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  tags                               = var.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  lifecycle {
    ignore_changes = [desired_count] # owned by Application Auto Scaling after creation
  }

  depends_on = [aws_lb_listener.http, aws_lb_listener.https]
}

resource "aws_ecs_service" "externally_deployed" {
  count = var.ignore_task_definition_changes ? local.service_count : 0

  name                               = local.service_name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn # the first revision only
  desired_count                      = var.min_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = var.health_check_grace_seconds
  propagate_tags                     = "SERVICE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  tags                               = var.tags

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  lifecycle {
    # desired_count: Application Auto Scaling's; task_definition: the deployer's (see above).
    ignore_changes = [desired_count, task_definition]
  }

  depends_on = [aws_lb_listener.http, aws_lb_listener.https]
}

# Registering the floor moves the service to it at once: raising min_count from 0 starts tasks.
resource "aws_appautoscaling_target" "this" {
  count = local.service_count

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${split("/", var.cluster_arn)[1]}/${local.service_name}"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
  tags               = var.tags

  depends_on = [aws_ecs_service.this, aws_ecs_service.externally_deployed]
}
