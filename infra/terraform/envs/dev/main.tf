# dev: one NAT gateway, Spot Batch capacity, a small single-zone database, everything deletable.

provider "aws" {
  region = var.region

  skip_credentials_validation = var.offline_plan
  skip_requesting_account_id  = var.offline_plan
  skip_metadata_api_check     = var.offline_plan
  skip_region_validation      = var.offline_plan

  default_tags {
    tags = {
      project     = "recops"
      environment = "dev"
      managed-by  = "terraform"
    }
  }
}

module "recops" {
  source = "../.."

  name               = "recops-dev"
  availability_zones = var.availability_zones
  single_nat_gateway = true
  client_cidr_blocks = var.client_cidr_blocks

  certificate_arn                  = var.certificate_arn
  mlflow_hostname                  = var.mlflow_hostname
  bento_hostname                   = var.bento_hostname
  dns_zone_id                      = var.dns_zone_id
  mlflow_client_security_group_ids = var.mlflow_client_security_group_ids
  bento_client_security_group_ids  = var.bento_client_security_group_ids

  gpu_max_vcpus      = 16
  cpu_max_vcpus      = 32
  use_spot           = true
  training_image_tag = var.training_image_tag

  mlflow_image_tag         = var.mlflow_image_tag
  mlflow_db_instance_class = "db.t4g.micro"
  mlflow_db_multi_az       = false

  prefect_worker_image_tag = var.prefect_worker_image_tag

  bento_image_tag = var.bento_image_tag
  bento_min_tasks = 1
  bento_max_tasks = 2
  # The token is injected and enforced in dev too; dev only does not refuse to start without it.
  bento_require_api_token = false

  # GitHub Actions through GitHub's OIDC provider (../../README.md, "GitHub Actions (OIDC)"): a
  # deploy role for jobs in the GitHub environment "dev", a plan role for pull requests.
  github_repository        = var.github_repository
  github_environment       = "dev"
  github_oidc_provider_arn = var.github_oidc_provider_arn
  terraform_state_bucket   = var.terraform_state_bucket
  terraform_state_key      = var.terraform_state_key

  deletion_protection = false
  force_destroy       = true
  log_retention_days  = 365
}
