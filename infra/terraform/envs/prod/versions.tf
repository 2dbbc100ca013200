terraform {
  required_version = ">= 1.6, < 2.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0" # the version in the local provider mirror that `make infra-check` uses
    }
  }

  # State: local by default. A platform team keeps it in S3; see README.md "Remote state".
}
