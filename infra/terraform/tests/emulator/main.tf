# Emulator-level test root (tests/integration/test_terraform_emulator.py): the real modules that a
# local AWS emulator can create and delete, composed as the root module composes them, against
# moto's server on 127.0.0.1. Not an environment: every endpoint is the emulator's.
#
# Left out, and covered by `make infra-check` (validate, offline plan, checkov) instead:
#   mlflow, bento_service: moto lacks Application Auto Scaling's ListTagsForResource, which the
#   provider reads after creating the scalable target; RDS and load balancers would also add a
#   minute of the provider's waiting. The bento image repository is applied on its own below.

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

  name               = var.name
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.workloads_security_group_id]
  kms_key_arn        = aws_kms_key.this.arn
  service_role_arn   = aws_iam_role.batch_service.arn
  training_image_tag = "emulator"
  force_destroy      = true
}

module "prefect_worker" {
  source = "../../modules/prefect_worker"

  name                         = var.name
  cluster_arn                  = aws_ecs_cluster.this.arn
  vpc_id                       = module.network.vpc_id
  subnet_ids                   = module.network.private_subnet_ids
  security_group_ids           = [module.network.workloads_security_group_id]
  kms_key_arn                  = aws_kms_key.this.arn
  flow_run_policy_arns         = [module.metaflow.client_policy_arn]
  flow_run_ecr_repository_arns = [module.metaflow.training_image_repository_arn]
}

# The bento_service module's repository, the same module with the same settings.
module "bento_repository" {
  source = "../../modules/ecr_repository"

  name         = "${var.name}/session-recommender"
  kms_key_arn  = aws_kms_key.this.arn
  force_delete = true
}
