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
  description = "Ranges besides the VPC allowed to reach MLflow and the bento service (VPN)."
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
  description = "Tag of the bento image to serve: `terraform apply -var bento_image_tag=<tag>` rolls it out."
  type        = string
  default     = null
}
