# A shared MLflow tracking server and model registry: `mlflow server` on Fargate behind an internal
# load balancer, PostgreSQL on RDS as the backend store, S3 as the artifact store. Clients talk
# HTTP(S) only: artifacts are proxied by the server (--serve-artifacts), so no client needs S3
# rights. MLflow's basic-auth app guards the server: its admin credentials are generated into
# Secrets Manager, and the load balancer admits only the security groups and ranges it is given.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  service_name = "${var.name}-mlflow"
  db_name      = "mlflow"
  db_secret    = aws_db_instance.this.master_user_secret[0].secret_arn
  # The load balancer's health checks send the task's private address as the Host header.
  health_check_hosts = ["10.*", "172.*", "192.168.*"]
}

module "artifacts" {
  source = "../s3_bucket"

  name_prefix   = "${var.name}-mlflow-"
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy
  tags          = var.tags
}

module "image" {
  source = "../ecr_repository"

  name         = "${var.name}/mlflow"
  kms_key_arn  = var.kms_key_arn
  force_delete = var.force_destroy
  tags         = var.tags
}

# --- PostgreSQL -------------------------------------------------------------------------------

resource "aws_db_subnet_group" "this" {
  name_prefix = "${local.service_name}-"
  description = "Private subnets of the MLflow database"
  subnet_ids  = var.private_subnet_ids
  tags        = var.tags
}

resource "aws_security_group" "db" {
  name_prefix = "${local.service_name}-db-"
  description = "MLflow database: PostgreSQL from the MLflow server only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${local.service_name}-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "db_from_server" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from the MLflow server tasks"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = module.server.task_security_group_id
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${local.service_name}-"
  family      = "postgres${split(".", var.db_engine_version)[0]}"
  description = "TLS-only connections and slow-query logging for the MLflow database"
  tags        = var.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000" # milliseconds
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_118:Enhanced monitoring adds a role and per-second metrics billing; the standard CloudWatch RDS metrics and exported PostgreSQL logs cover a tracking server.
  #checkov:skip=CKV_AWS_353:Performance Insights is a paid extra for a database whose queries are MLflow's own, simple ones; turn it on per environment when a slow query needs explaining.
  #checkov:skip=CKV_AWS_354:Same as CKV_AWS_353: Performance Insights is off, so it has no key.
  #checkov:skip=CKV_AWS_157:Multi-AZ is var.db_multi_az: on in prod, off in dev where a standby doubles the cost of an idle database.
  #checkov:skip=CKV_AWS_293:Deletion protection is var.deletion_protection: on in prod, off in dev so that the environment can be torn down.
  identifier_prefix     = "${local.service_name}-"
  engine                = "postgres"
  engine_version        = var.db_engine_version
  instance_class        = var.db_instance_class
  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_name  = local.db_name
  username = "mlflow"
  # RDS generates the password and keeps it in Secrets Manager; it never enters Terraform state.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.kms_key_arn

  db_subnet_group_name                = aws_db_subnet_group.this.name
  vpc_security_group_ids              = [aws_security_group.db.id]
  parameter_group_name                = aws_db_parameter_group.this.name
  publicly_accessible                 = false
  multi_az                            = var.db_multi_az
  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  backup_retention_period    = var.db_backup_retention_days
  copy_tags_to_snapshot      = true
  auto_minor_version_upgrade = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = !var.deletion_protection
  final_snapshot_identifier  = var.deletion_protection ? "${local.service_name}-final" : null
  apply_immediately          = !var.deletion_protection

  tags = var.tags
}

resource "aws_secretsmanager_secret_rotation" "db" {
  secret_id = local.db_secret

  rotation_rules {
    schedule_expression = var.db_password_rotation_schedule
    duration            = "1h"
  }
}

# --- Authentication (MLflow's basic-auth app) ---------------------------------------------------

# The admin account, in the JSON keys that MLflow clients read, so that one secret serves the
# server (MLFLOW_AUTH_ADMIN_* from these keys), ECS clients (`secrets` valueFrom <arn>:<key>::)
# and Metaflow's @secrets on Batch (a JSON secret's keys become environment variables).
module "admin_credentials" {
  source = "../generated_secret"

  name_prefix   = "${var.name}/mlflow/admin-"
  description   = "MLflow basic-auth admin: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for the server (as MLFLOW_AUTH_ADMIN_*) and its clients"
  kms_key_arn   = var.kms_key_arn
  generated_key = "MLFLOW_TRACKING_PASSWORD"
  fixed_fields  = { MLFLOW_TRACKING_USERNAME = var.admin_username }
  generation    = var.admin_password_generation
  tags          = var.tags
}

# The auth app signs its CSRF tokens with this key and refuses to start without one; every worker
# of every task must share it.
module "flask_secret_key" {
  source = "../generated_secret"

  name_prefix = "${var.name}/mlflow/flask-secret-key-"
  description = "MLFLOW_FLASK_SERVER_SECRET_KEY of the MLflow server (CSRF tokens of the basic-auth app)"
  kms_key_arn = var.kms_key_arn
  tags        = var.tags
}

data "aws_iam_policy_document" "client_credentials" {
  statement {
    sid       = "ReadMlflowCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.admin_credentials.arn]
  }
  statement {
    sid       = "DecryptMlflowCredentials"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

# --- Tracking server --------------------------------------------------------------------------

data "aws_iam_policy_document" "artifacts" {
  statement {
    sid       = "ListArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [module.artifacts.arn]
  }
  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] # runs and models are deletable from the UI
    resources = ["${module.artifacts.arn}/*"]
  }
  statement {
    sid       = "UseArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

module "server_role" {
  source      = "../iam_role"
  name_prefix = "${local.service_name}-task-"
  description = "The MLflow server: read and write the artifact bucket"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "mlflow-artifacts"
  policy_json = data.aws_iam_policy_document.artifacts.json
  tags        = var.tags
}

module "server" {
  source = "../ecs_http_service"

  name                     = local.service_name
  cluster_arn              = var.cluster_arn
  vpc_id                   = var.vpc_id
  vpc_cidr_block           = var.vpc_cidr_block
  task_subnet_ids          = var.private_subnet_ids
  load_balancer_subnet_ids = var.private_subnet_ids
  internal                 = true
  allowed_cidr_blocks      = var.allowed_cidr_blocks
  allowed_security_groups  = var.allowed_security_groups
  certificate_arn          = var.certificate_arn
  hostname                 = var.hostname
  dns_zone_id              = var.dns_zone_id
  deletion_protection      = var.deletion_protection

  image          = "${module.image.url}:${coalesce(var.image_tag, "unset")}"
  container_port = 5000
  environment = {
    # infra/docker/mlflow/serve.py builds the backend URI from these (the password URL-quoted).
    MLFLOW_DB_HOST        = aws_db_instance.this.address
    MLFLOW_DB_PORT        = tostring(aws_db_instance.this.port)
    MLFLOW_DB_NAME        = local.db_name
    MLFLOW_ARTIFACTS      = "s3://${module.artifacts.id}/artifacts"
    MLFLOW_ALLOWED_HOSTS  = join(",", concat([module.server.load_balancer_dns_name], compact([var.hostname]), var.hostnames, local.health_check_hosts))
    MLFLOW_SERVER_WORKERS = "2"
    AWS_DEFAULT_REGION    = data.aws_region.current.name
  }
  # Nothing secret on the command line or in plain environment: serve.py reads these.
  secrets = {
    MLFLOW_DB_USER                 = "${local.db_secret}:username::"
    MLFLOW_DB_PASSWORD             = "${local.db_secret}:password::"
    MLFLOW_AUTH_ADMIN_USERNAME     = module.admin_credentials.value_from["MLFLOW_TRACKING_USERNAME"]
    MLFLOW_AUTH_ADMIN_PASSWORD     = module.admin_credentials.value_from["MLFLOW_TRACKING_PASSWORD"]
    MLFLOW_FLASK_SERVER_SECRET_KEY = module.flask_secret_key.arn
  }
  secret_arns         = [local.db_secret, module.admin_credentials.arn, module.flask_secret_key.arn]
  ecr_repository_arns = [module.image.arn]
  task_role_arn       = module.server_role.arn

  cpu                        = var.cpu
  memory                     = var.memory
  min_count                  = var.image_tag == null ? 0 : var.task_count
  max_count                  = var.task_count
  health_check_path          = "/health"
  health_check_grace_seconds = 120 # the first start migrates the database schema
  log_retention_days         = var.log_retention_days
  kms_key_arn                = var.kms_key_arn
  tags                       = var.tags
}

# ECS reads secrets when a task starts. After RDS rotates the password, new database connections
# of a running server would fail, so the server is redeployed (a rolling restart) after each
# rotation window.
data "aws_iam_policy_document" "restart" {
  statement {
    actions   = ["ecs:UpdateService"]
    resources = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:*:service/${split("/", var.cluster_arn)[1]}/${module.server.service_name}"]
  }
}

module "restart_role" {
  source      = "../iam_role"
  name_prefix = "${local.service_name}-restart-"
  description = "EventBridge Scheduler: redeploy the MLflow server after a password rotation"
  service     = "scheduler.amazonaws.com"
  policy_name = "redeploy-mlflow"
  policy_json = data.aws_iam_policy_document.restart.json
  tags        = var.tags
}

resource "aws_scheduler_schedule" "restart_after_rotation" {
  name_prefix         = "${local.service_name}-restart-"
  description         = "Rolling restart of the MLflow server after RDS rotated its database password"
  schedule_expression = var.server_restart_schedule
  kms_key_arn         = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:${data.aws_partition.current.partition}:scheduler:::aws-sdk:ecs:updateService"
    role_arn = module.restart_role.arn
    input = jsonencode({
      Cluster            = var.cluster_arn
      Service            = module.server.service_name
      ForceNewDeployment = true
    })
  }
}
