# prod: a NAT gateway and a load-balancer leg per zone, on-demand Batch capacity, a Multi-AZ
# database, at least two bento tasks, and deletion protection with a final database snapshot.

provider "aws" {
  region = var.region

  skip_credentials_validation = var.offline_plan
  skip_requesting_account_id  = var.offline_plan
  skip_metadata_api_check     = var.offline_plan
  skip_region_validation      = var.offline_plan

  default_tags {
    tags = {
      project     = "recops"
      environment = "prod"
      managed-by  = "terraform"
    }
  }
}

module "recops" {
  source = "../.."

  name               = "recops-prod"
  availability_zones = var.availability_zones
  single_nat_gateway = false
  client_cidr_blocks = var.client_cidr_blocks

  certificate_arn                  = var.certificate_arn
  mlflow_hostname                  = var.mlflow_hostname
  bento_hostname                   = var.bento_hostname
  dns_zone_id                      = var.dns_zone_id
  mlflow_client_security_group_ids = var.mlflow_client_security_group_ids
  bento_client_security_group_ids  = var.bento_client_security_group_ids

  gpu_max_vcpus      = 64
  cpu_max_vcpus      = 128
  use_spot           = false
  training_image_tag = var.training_image_tag

  mlflow_image_tag         = var.mlflow_image_tag
  mlflow_db_instance_class = "db.t4g.small"
  mlflow_db_multi_az       = true

  prefect_worker_image_tag = var.prefect_worker_image_tag

  bento_image_tag = var.bento_image_tag
  bento_min_tasks = 2
  bento_max_tasks = 8
  # A bento task that gets no token refuses to start rather than serve unauthenticated.
  bento_require_api_token = true

  # GitHub Actions through GitHub's OIDC provider (../../README.md, "GitHub Actions (OIDC)"): a
  # deploy role for jobs in the GitHub environment "prod", a plan role for pull requests.
  github_repository        = var.github_repository
  github_environment       = "prod"
  github_oidc_provider_arn = var.github_oidc_provider_arn
  terraform_state_bucket   = var.terraform_state_bucket
  terraform_state_key      = var.terraform_state_key

  deletion_protection = true
  force_destroy       = false
  log_retention_days  = 365
}
