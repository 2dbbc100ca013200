# Emulator-level test root (tests/integration/test_terraform_emulator.py): the real modules that a
# local AWS emulator can create and delete, composed as the root module composes them, against
# moto's server on 127.0.0.1. Not an environment: every endpoint is the emulator's.
#
# Left out, and covered by `make infra-check` (validate, offline plan, checkov) instead:
#   mlflow, bento_service: moto lacks Application Auto Scaling's ListTagsForResource, which the
#   provider reads after creating the scalable target; RDS and load balancers would also add a
#   minute of the provider's waiting. Their parts that moto can hold are applied on their own
#   below, as those modules configure them: the bento image repository, the MLflow credentials
#   secret (generated, write-only) and the bento's API token.

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    batch          = var.endpoint
    cloudwatchlogs = var.endpoint
    ec2            = var.endpoint
    ecr            = var.endpoint
    ecs            = var.endpoint
    iam            = var.endpoint
    kms            = var.endpoint
    s3             = var.endpoint
    secretsmanager = var.endpoint
    sts            = var.endpoint
  }

  default_tags {
    tags = { project = "recops", environment = "emulator" }
  }
}

resource "aws_kms_key" "this" {
  #checkov:skip=CKV_AWS_7:Emulator-only key; rotation adds ten seconds of the provider's propagation polling to the test and protects nothing.
  #checkov:skip=CKV2_AWS_64:Emulator-only key; the default key policy is enough for a key that lives for one test.
  description = "${var.name}: emulator test key"
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

module "network" {
  source = "../../modules/network"

  name               = var.name
  availability_zones = ["us-east-1a", "us-east-1b"]
  single_nat_gateway = true
  kms_key_arn        = aws_kms_key.this.arn
}

locals {
  workload = module.network.workload_security_group_ids
}

module "store" {
  source = "../../modules/recops_store"

  name          = var.name
  kms_key_arn   = aws_kms_key.this.arn
  force_destroy = true
}

# The mlflow module's admin credentials, with the same settings.
module "mlflow_credentials" {
  source = "../../modules/generated_secret"

  name_prefix             = "${var.name}/mlflow/admin-"
  description             = "MLflow basic-auth admin (emulator)"
  kms_key_arn             = aws_kms_key.this.arn
  generated_key           = "MLFLOW_TRACKING_PASSWORD"
  fixed_fields            = { MLFLOW_TRACKING_USERNAME = "recops" }
  recovery_window_in_days = 0
}

# The bento_service module's API token, with the same settings.
module "bento_api_token" {
  source = "../../modules/generated_secret"

  name_prefix             = "${var.name}/bento/api-token-"
  description             = "RECOPS_API_TOKEN of the bento service (emulator)"
  kms_key_arn             = aws_kms_key.this.arn
  recovery_window_in_days = 0
}

data "aws_iam_policy_document" "mlflow_credentials" {
  statement {
    sid       = "ReadMlflowCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.mlflow_credentials.arn]
  }
}

# Real accounts use Batch's service-linked role (service_role_arn = null); the emulator has none.
data "aws_iam_policy_document" "batch_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["batch.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "batch_service" {
  name_prefix        = "${var.name}-batch-service-"
  assume_role_policy = data.aws_iam_policy_document.batch_assume.json
}

module "metaflow" {
  source = "../../modules/metaflow"

  name                 = var.name
  subnet_ids           = module.network.private_subnet_ids
  security_group_ids   = [local.workload["batch"]]
  kms_key_arn          = aws_kms_key.this.arn
  service_role_arn     = aws_iam_role.batch_service.arn
  training_image_tag   = "emulator"
  job_policy_documents = [module.store.read_only_policy_json, data.aws_iam_policy_document.mlflow_credentials.json]
  force_destroy        = true
}

module "prefect_worker" {
  source = "../../modules/prefect_worker"

  name                         = var.name
  cluster_arn                  = aws_ecs_cluster.this.arn
  vpc_id                       = module.network.vpc_id
  subnet_ids                   = module.network.private_subnet_ids
  worker_security_group_ids    = [local.workload["prefect-worker"]]
  flow_run_security_group_ids  = [local.workload["flow-runs"]]
  kms_key_arn                  = aws_kms_key.this.arn
  image_tag                    = "emulator"
  flow_run_policy_arns         = [module.metaflow.client_policy_arn, module.store.read_write_policy_arn]
  flow_run_ecr_repository_arns = [module.metaflow.training_image_repository_arn]
  flow_run_environment = {
    RECOPS_STORE          = module.store.uri
    RECOPS_DEPLOY_BACKEND = "ecs"
  }
  flow_run_secrets     = module.mlflow_credentials.value_from
  flow_run_secret_arns = [module.mlflow_credentials.arn]
  force_destroy        = true
}

# The bento_service module's repository, the same module with the same settings.
module "bento_repository" {
  source = "../../modules/ecr_repository"

  name         = "${var.name}/session-recommender"
  kms_key_arn  = aws_kms_key.this.arn
  force_delete = true
}
