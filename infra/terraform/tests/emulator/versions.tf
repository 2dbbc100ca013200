terraform {
  required_version = ">= 1.11, < 2.0" # write-only secret values (modules/generated_secret)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
  }
}
