# The AWS side of recops for one environment: the network, Metaflow on Batch (GPU and CPU), the
# cycle's store, a shared MLflow, a Prefect worker and the bento service, sharing one KMS key and
# one ECS cluster. envs/<name>/ call this module with the environment's sizes and the provider
# configuration. Services admit their clients by security group: each workload kind has its own.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  # The account comes from the key's ARN: no sts:GetCallerIdentity, so a plan stays offline.
  account_id = split(":", aws_kms_key.this.arn)[4]
  tags       = merge({ "recops:stack" = var.name }, var.tags)
  workload   = module.network.workload_security_group_ids # batch, prefect-worker, flow-runs

  # The callers each load balancer admits, by name (known at plan time) => security group.
  mlflow_clients = merge(
    { batch = local.workload["batch"], prefect-worker = local.workload["prefect-worker"], flow-runs = local.workload["flow-runs"] },
    { for i, group in var.mlflow_client_security_group_ids : "client-${i}" => group },
  )
  bento_clients = { for i, group in var.bento_client_security_group_ids : "client-${i}" => group }
}

# --- One key for the stack's data at rest -------------------------------------------------------

resource "aws_kms_key" "this" {
  description             = "${var.name}: S3, RDS, Secrets Manager, ECR and CloudWatch Logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:In a key policy, Resource "*" is this key alone; the root statement is AWS's default key policy, which hands access control to IAM.
  #checkov:skip=CKV_AWS_111:Same key-policy statement as CKV_AWS_109.
  #checkov:skip=CKV_AWS_356:Same key-policy statement as CKV_AWS_109.
  statement {
    # The account's IAM policies decide who else may use the key (roles below grant themselves
    # kms:Decrypt / GenerateDataKey on it).
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsThisAccountsLogGroups"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key_policy" "this" {
  key_id = aws_kms_key.this.id
  policy = data.aws_iam_policy_document.key.json
}

# --- Shared ECS cluster (Fargate: no instances to idle) -----------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# --- Parts ----------------------------------------------------------------------------------------

module "network" {
  source = "./modules/network"

  name                    = var.name
  cidr_block              = var.vpc_cidr_block
  availability_zones      = var.availability_zones
  single_nat_gateway      = var.single_nat_gateway
  kms_key_arn             = aws_kms_key.this.arn
  flow_log_retention_days = var.log_retention_days
  tags                    = local.tags

  depends_on = [aws_kms_key_policy.this] # log groups need the Logs statement of the key policy
}

module "store" {
  source = "./modules/recops_store"

  name          = var.name
  prefix        = var.store_prefix
  kms_key_arn   = aws_kms_key.this.arn
  force_destroy = var.force_destroy
  tags          = local.tags
}

module "metaflow" {
  source = "./modules/metaflow"

  name               = var.name
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [local.workload["batch"]]
  kms_key_arn        = aws_kms_key.this.arn
  # A step on Batch reads the snapshot it trains on from the store, and may log to MLflow with
  # @secrets(sources=[RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN]).
  job_policy_documents = [module.store.read_only_policy_json, module.mlflow.client_credentials_policy_json]
  gpu_instance_types   = var.gpu_instance_types
  gpu_max_vcpus        = var.gpu_max_vcpus
  cpu_max_vcpus        = var.cpu_max_vcpus
  use_spot             = var.use_spot
  training_image_tag   = var.training_image_tag
  force_destroy        = var.force_destroy
  tags                 = local.tags
}

module "mlflow" {
  source = "./modules/mlflow"

  name                      = var.name
  cluster_arn               = aws_ecs_cluster.this.arn
  vpc_id                    = module.network.vpc_id
  vpc_cidr_block            = module.network.vpc_cidr_block
  private_subnet_ids        = module.network.private_subnet_ids
  allowed_cidr_blocks       = var.client_cidr_blocks
  allowed_security_groups   = local.mlflow_clients
  certificate_arn           = var.certificate_arn
  hostname                  = var.mlflow_hostname
  dns_zone_id               = var.dns_zone_id
  kms_key_arn               = aws_kms_key.this.arn
  image_tag                 = var.mlflow_image_tag
  admin_password_generation = var.mlflow_admin_password_generation
  db_instance_class         = var.mlflow_db_instance_class
  db_multi_az               = var.mlflow_db_multi_az
  deletion_protection       = var.deletion_protection
  force_destroy             = var.force_destroy
  log_retention_days        = var.log_retention_days
  tags                      = local.tags

  depends_on = [aws_kms_key_policy.this]
}

# What every flow run of the cycle gets (client_environment, client_secrets): the store, the
# deploy target, Metaflow on Batch and MLflow, with the credentials from Secrets Manager.
locals {
  client_environment = merge(module.metaflow.metaflow_profile, {
    AWS_DEFAULT_REGION     = local.region
    RECOPS_STORE           = module.store.uri
    RECOPS_BATCH_GPU_QUEUE = module.metaflow.gpu_job_queue_arn
    RECOPS_DEPLOY_BACKEND  = "ecs"
    RECOPS_ECS_CLUSTER     = aws_ecs_cluster.this.name
    RECOPS_ECS_SERVICE     = module.bento_service.service_name
    RECOPS_ECS_CONTAINER   = module.bento_service.container_name
    RECOPS_ECR_REPOSITORY  = module.bento_service.repository_name
    MLFLOW_TRACKING_URI    = module.mlflow.tracking_uri
    # For Metaflow's @secrets in steps on Batch, which get no ECS secrets of their own.
    RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN = module.mlflow.client_credentials_secret_arn
  })
  client_secrets = module.mlflow.client_credentials # MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD
}

module "prefect_worker" {
  source = "./modules/prefect_worker"

  name                        = var.name
  cluster_arn                 = aws_ecs_cluster.this.arn
  vpc_id                      = module.network.vpc_id
  subnet_ids                  = module.network.private_subnet_ids
  worker_security_group_ids   = [local.workload["prefect-worker"]]
  flow_run_security_group_ids = [local.workload["flow-runs"]]
  kms_key_arn                 = aws_kms_key.this.arn
  work_pool_name              = var.prefect_work_pool
  image_tag                   = var.prefect_worker_image_tag
  worker_count                = var.prefect_worker_count

  # A flow run launches Metaflow on Batch, reads and writes the store, and deploys the bento.
  flow_run_policy_arns = [
    module.metaflow.client_policy_arn,
    module.store.read_write_policy_arn,
    module.bento_service.deployer_policy_arn,
  ]
  flow_run_ecr_repository_arns = [module.metaflow.training_image_repository_arn]
  flow_run_environment         = local.client_environment
  flow_run_secrets             = local.client_secrets
  flow_run_secret_arns         = [module.mlflow.client_credentials_secret_arn]
  force_destroy                = var.force_destroy
  log_retention_days           = var.log_retention_days
  tags                         = local.tags

  depends_on = [aws_kms_key_policy.this]
}

module "bento_service" {
  source = "./modules/bento_service"

  name                    = var.name
  image_tag               = var.bento_image_tag
  cluster_arn             = aws_ecs_cluster.this.arn
  vpc_id                  = module.network.vpc_id
  vpc_cidr_block          = module.network.vpc_cidr_block
  private_subnet_ids      = module.network.private_subnet_ids
  public_subnet_ids       = module.network.public_subnet_ids
  allowed_cidr_blocks     = var.client_cidr_blocks
  allowed_security_groups = local.bento_clients
  certificate_arn         = var.certificate_arn
  hostname                = var.bento_hostname
  dns_zone_id             = var.dns_zone_id
  require_api_token       = var.bento_require_api_token
  store_uri               = module.store.uri
  store_policy_json       = module.store.serving_policy_json
  api_token_generation    = var.bento_api_token_generation
  min_tasks               = var.bento_min_tasks
  max_tasks               = var.bento_max_tasks
  deletion_protection     = var.deletion_protection
  force_destroy           = var.force_destroy
  kms_key_arn             = aws_kms_key.this.arn
  log_retention_days      = var.log_retention_days
  tags                    = local.tags

  depends_on = [aws_kms_key_policy.this]
}

# --- GitHub Actions (OIDC): CD and pull-request plans without stored keys ---------------------------

module "github_oidc" {
  count  = var.github_repository == "" ? 0 : 1
  source = "./modules/github_oidc"

  name               = var.name
  github_repository  = var.github_repository
  github_environment = coalesce(var.github_environment, var.name)
  # One provider per account: create it unless the account's is given (the second env in it).
  create_oidc_provider = var.github_oidc_provider_arn == ""
  oidc_provider_arn    = var.github_oidc_provider_arn == "" ? null : var.github_oidc_provider_arn
  kms_key_arn          = aws_kms_key.this.arn

  terraform_state_bucket      = var.terraform_state_bucket
  terraform_state_key         = var.terraform_state_key
  terraform_state_kms_key_arn = var.terraform_state_kms_key_arn

  # What CD does besides `terraform apply`: push the training and bento images, roll the bento
  # out (as recops.serving.ecs does) and read the secrets its steps need.
  ecr_repository_arns          = [module.metaflow.training_image_repository_arn, module.bento_service.repository_arn]
  secret_arns                  = [module.prefect_worker.api_url_secret_arn, module.prefect_worker.api_key_secret_arn, module.mlflow.client_credentials_secret_arn]
  bento_service_arn            = module.bento_service.service_arn
  bento_task_definition_family = module.bento_service.task_definition_family
  bento_task_role_arns         = module.bento_service.task_role_arns

  # The one AWS-managed policy the stack attaches (modules/metaflow, the Batch instance role).
  aws_managed_policy_arns = ["arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"]
  dns_zone_id             = var.dns_zone_id
  dns_record_names        = compact([var.mlflow_hostname, var.bento_hostname])
  tags                    = local.tags
}
