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

variable "worker_security_group_ids" {
  description = "Security groups of the worker task (outbound only)."
  type        = list(string)
}

variable "flow_run_security_group_ids" {
  description = "Security groups of the flow-run tasks (outbound only); the services a flow run calls admit them by reference."
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

variable "image_tag" {
  description = "Tag of the worker image (infra/docker/prefect-worker: Prefect and prefect-aws pinned) in this module's repository. Null runs no worker until an image has been pushed."
  type        = string
  default     = null
}

variable "worker_count" {
  description = "Worker tasks once image_tag is set (one is enough: a worker only submits flow runs; zero pauses the pool)."
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

variable "flow_run_cpu" {
  description = "Fargate CPU units of a flow-run task (the flow orchestrates; training runs on Batch)."
  type        = number
  default     = 1024
}

variable "flow_run_memory" {
  description = "Fargate memory of a flow-run task in MiB."
  type        = number
  default     = 4096
}

variable "flow_run_environment" {
  description = "Plain environment variables of every flow run (settings, never credentials)."
  type        = map(string)
  default     = {}
}

variable "flow_run_secrets" {
  description = "Environment variables of every flow run read from Secrets Manager when the task starts: name => valueFrom (a secret ARN, optionally with :json-key:: appended)."
  type        = map(string)
  default     = {}
}

variable "flow_run_secret_arns" {
  description = "Secrets (plain ARNs) behind flow_run_secrets, which the flow-run execution role may read."
  type        = list(string)
  default     = []
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

variable "force_destroy" {
  description = "Let `terraform destroy` delete the worker image repository with its images (dev and tests only)."
  type        = bool
  default     = false
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
