variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "us-east-1"
}

variable "availability_zones" {
  description = "Zones of the region to spread over (given, not looked up: a plan needs no AWS call)."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
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

variable "certificate_arn" {
  description = "ACM certificate covering mlflow_hostname and bento_hostname: HTTPS on both load balancers, port 80 redirecting. Null (dev's default) serves plain HTTP inside the VPC."
  type        = string
  default     = null
}

variable "mlflow_hostname" {
  description = "DNS name of MLflow, required with certificate_arn."
  type        = string
  default     = null
}

variable "bento_hostname" {
  description = "DNS name of the bento service, required with certificate_arn."
  type        = string
  default     = null
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
  description = "GitHub repository (owner/name) whose workflows get this env's deploy role (jobs in the GitHub environment \"dev\") and plan role (pull requests); \"\" creates no GitHub access."
  type        = string
  default     = ""
}

variable "github_oidc_provider_arn" {
  description = "The account's IAM OIDC provider for token.actions.githubusercontent.com if it exists already (another project made it); \"\" creates it. IAM holds one per account: prod, in the same account, passes this env's output github_actions.oidc_provider_arn."
  type        = string
  default     = ""
}

variable "terraform_state_bucket" {
  description = "The state bucket given at init (-backend-config=bucket=...): the GitHub roles read (plan) and write (deploy) this env's state in it. Required with github_repository."
  type        = string
  default     = ""
}

variable "terraform_state_key" {
  description = "The state key given at init (-backend-config=key=...)."
  type        = string
  default     = "recops/dev.tfstate"
}
