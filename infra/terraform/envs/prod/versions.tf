terraform {
  required_version = ">= 1.11, < 2.0" # write-only secret values; S3 state locking without DynamoDB

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0" # the version in the local provider mirror that `make infra-check` uses
    }
  }

  # State in S3, locked with a lock file beside it (no DynamoDB table). Partial configuration: the
  # bucket, key and region come at init (README.md), so no account is named here:
  #   terraform init -backend-config=bucket=<state bucket> -backend-config=key=recops/prod.tfstate -backend-config=region=<region>
  # `make infra-check` inits with -backend=false.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}
