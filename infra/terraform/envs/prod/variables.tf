variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "us-east-1"
}

variable "availability_zones" {
  description = "Zones of the region to spread over (given, not looked up: a plan needs no AWS call)."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b", "us-east-1c"]
}

variable "offline_plan" {
  description = "Plan with no call to AWS (no credential check, no account lookup, no instance metadata): `make infra-check` sets it with dummy credentials. Leave false for real plans and applies."
  type        = bool
  default     = false
}

variable "client_cidr_blocks" {
  description = "Ranges allowed to reach MLflow and the bento service (a VPN); in-VPC callers are admitted by security group."
  type        = list(string)
  default     = []
}

variable "mlflow_client_security_group_ids" {
  description = "Security groups admitted to MLflow besides Batch, the Prefect worker and its flow runs."
  type        = list(string)
  default     = []
}

variable "bento_client_security_group_ids" {
  description = "Security groups of the backends that call the recommender."
  type        = list(string)
  default     = []
}

variable "training_image_tag" {
  description = "Tag of the training image that Metaflow's Batch jobs run."
  type        = string
  default     = null
}

variable "mlflow_image_tag" {
  description = "Tag of the MLflow server image; null runs no server task yet."
  type        = string
  default     = null
}

variable "bento_image_tag" {
  description = "Tag of the serving image the bento service is created with; later images are deployed by the cycle (recops' ECS backend), not by Terraform."
  type        = string
  default     = null
}

# prod serves HTTPS only: no default certificate, and the plan stops with these messages when one
# is missing. `make infra-check` plans prod with offline-plan.tfvars (placeholder values).
variable "certificate_arn" {
  description = "ACM certificate (required) covering mlflow_hostname and bento_hostname: HTTPS on both load balancers, port 80 redirecting."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn != null && can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "prod needs certificate_arn: the ARN of an ACM certificate (arn:aws:acm:<region>:<account>:certificate/<id>) in this region that covers mlflow_hostname and bento_hostname. prod serves MLflow and the bento over HTTPS only."
  }
}

variable "mlflow_hostname" {
  description = "DNS name of MLflow (required), covered by certificate_arn: MLFLOW_TRACKING_URI is https://<mlflow_hostname>."
  type        = string
  default     = null

  validation {
    condition     = var.mlflow_hostname != null
    error_message = "prod needs mlflow_hostname, the DNS name certificate_arn covers and clients use for MLflow (TLS verification fails on the load balancer's own name)."
  }
}

variable "bento_hostname" {
  description = "DNS name of the bento service (required), covered by certificate_arn."
  type        = string
  default     = null

  validation {
    condition     = var.bento_hostname != null
    error_message = "prod needs bento_hostname, the DNS name certificate_arn covers and clients use for the recommender."
  }
}

variable "dns_zone_id" {
  description = "Route 53 private hosted zone in which to create the two host names as aliases of the load balancers; null: create the records elsewhere."
  type        = string
  default     = null
}

variable "prefect_worker_image_tag" {
  description = "Tag of the Prefect worker image (infra/docker/prefect-worker); null runs no worker yet."
  type        = string
  default     = null
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose workflows get this env's deploy role (jobs in the GitHub environment \"prod\") and plan role (pull requests); \"\" creates no GitHub access."
  type        = string
  default     = ""
}

# One GitHub OIDC provider per AWS account: dev creates it, prod in the same account reuses it.
variable "github_oidc_provider_arn" {
  description = "With github_repository: dev's output github_actions.oidc_provider_arn when prod shares dev's account (IAM holds one provider per URL and account), or \"\" to create one when prod has an account of its own."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == "" || var.github_oidc_provider_arn != null
    error_message = "prod needs github_oidc_provider_arn with github_repository: dev's `terraform output -json github_actions | jq -r .oidc_provider_arn` when both share an account, or \"\" when prod has an account of its own."
  }
}

variable "terraform_state_bucket" {
  description = "The state bucket given at init (-backend-config=bucket=...): the GitHub roles read (plan) and write (deploy) this env's state in it. Required with github_repository."
  type        = string
  default     = ""
}

variable "terraform_state_key" {
  description = "The state key given at init (-backend-config=key=...)."
  type        = string
  default     = "recops/prod.tfstate"
}
