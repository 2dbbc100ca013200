variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev (the service is <name>-prefect-worker)."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster for the worker and for the flow runs it starts."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the worker and its flow runs."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the worker and its flow runs (they reach the Prefect API through NAT)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for the worker and its flow runs (outbound only)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for the API secrets and the logs."
  type        = string
}

variable "work_pool_name" {
  description = "Prefect work pool of type ecs that the worker polls."
  type        = string
  default     = "recops-ecs"
}

variable "image" {
  description = "Worker image: Prefect with the same minor version as the server, prefect-aws added at start by EXTRA_PIP_PACKAGES."
  type        = string
  default     = "prefecthq/prefect:3.9.1-python3.11"
}

variable "extra_pip_packages" {
  description = "Packages the Prefect image installs when it starts (the ECS worker type lives in prefect-aws)."
  type        = string
  default     = "prefect-aws"
}

variable "worker_count" {
  description = "Worker tasks (one is enough: a worker only submits flow runs; zero pauses the pool)."
  type        = number
  default     = 1
}

variable "cpu" {
  description = "Fargate CPU units of the worker task."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate memory of the worker task in MiB."
  type        = number
  default     = 1024
}

variable "flow_run_policy_arns" {
  description = "Managed policies for the role that flow runs run as (e.g. the Metaflow client policy, so that a retraining flow can launch training on Batch)."
  type        = list(string)
  default     = []
}

variable "flow_run_ecr_repository_arns" {
  description = "ECR repositories that flow-run images are pulled from."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days to keep worker and flow-run logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
