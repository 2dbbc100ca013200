variable "name" {
  description = "Name of the service, its load balancer and log group, e.g. recops-dev-mlflow (at most 28 characters: load balancer names stop at 32)."
  type        = string

  validation {
    condition     = length(var.name) <= 28 && can(regex("^[a-zA-Z0-9-]+$", var.name))
    error_message = "name must be letters, digits and hyphens, at most 28 characters."
  }
}

variable "cluster_arn" {
  description = "ECS cluster the service runs in."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the service."
  type        = string
}

variable "vpc_cidr_block" {
  description = "IPv4 range of the VPC (with allow_vpc_egress, tasks may open TCP connections inside it, e.g. to a database)."
  type        = string
}

variable "allow_vpc_egress" {
  description = "Let the tasks open TCP connections inside the VPC (a database); false leaves them HTTPS out only (AWS APIs, ECR)."
  type        = bool
  default     = true
}

variable "task_subnet_ids" {
  description = "Private subnets for the tasks."
  type        = list(string)
}

variable "load_balancer_subnet_ids" {
  description = "Subnets for the load balancer: private ones when internal, public ones when internet-facing."
  type        = list(string)
}

variable "internal" {
  description = "Internal load balancer (reachable from the VPC and peered networks only)."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "Client ranges allowed to reach the load balancer (a VPN, a peered network); in-VPC clients are better named in allowed_security_groups."
  type        = list(string)
  default     = []
}

variable "allowed_security_groups" {
  description = "Client security groups allowed to reach the load balancer, by a name known at plan time: { batch = sg-..., flow-runs = sg-... }."
  type        = map(string)
  default     = {}
}

variable "certificate_arn" {
  description = "ACM certificate for an HTTPS listener (plain HTTP is then redirected). Null serves plain HTTP, allowed only on an internal load balancer. Needs hostname."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "ELB security policy of the HTTPS listener: TLS 1.2 and 1.3 only."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-TLS13-1-[23]-", var.ssl_policy))
    error_message = "ssl_policy must be a TLS 1.3 policy with TLS 1.2 or 1.3 as the minimum (ELBSecurityPolicy-TLS13-1-2-* or ELBSecurityPolicy-TLS13-1-3-*)."
  }
}

variable "hostname" {
  description = "DNS name clients use (the one certificate_arn covers), e.g. mlflow.recops.internal. Null: the load balancer's own DNS name (HTTP only)."
  type        = string
  default     = null
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone in which to create `hostname` as an alias of the load balancer; null creates no record (point the name at load_balancer_dns_name elsewhere)."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer (prod)."
  type        = bool
  default     = true
}

variable "image" {
  description = "Container image."
  type        = string
}

variable "command" {
  description = "Container command; null keeps the image's."
  type        = list(string)
  default     = null
}

variable "container_port" {
  description = "Port the container listens on."
  type        = number
}

variable "environment" {
  description = "Plain environment variables of the container."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Environment variables read from Secrets Manager at task start: name => secret ARN, optionally with :json-key:: appended."
  type        = map(string)
  default     = {}
}

variable "secret_arns" {
  description = "Secrets (plain ARNs) that the execution role may read, for `secrets`."
  type        = list(string)
  default     = []
}

variable "ecr_repository_arns" {
  description = "ECR repositories that the execution role may pull from (none for public images)."
  type        = list(string)
  default     = []
}

variable "task_role_arn" {
  description = "Role that the application runs as; null for an application that calls no AWS API."
  type        = string
  default     = null
}

variable "cpu" {
  description = "Fargate CPU units per task (1024 = 1 vCPU)."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate memory per task in MiB."
  type        = number
  default     = 1024
}

variable "create_service" {
  description = "Create the ECS service (and its scaling target). False keeps the load balancer and task definition alone, e.g. until a first image exists."
  type        = bool
  default     = true
}

variable "ignore_task_definition_changes" {
  description = "A deployer outside Terraform sets the service's task definition: after creation, the service keeps the revision it was last set to, and an apply does not roll it back to Terraform's revision."
  type        = bool
  default     = false
}

variable "min_count" {
  description = "Fewest tasks (the scaling floor). Zero stops the service at no compute cost."
  type        = number
  default     = 1
}

variable "max_count" {
  description = "Most tasks (the scaling ceiling)."
  type        = number
  default     = 1
}

variable "health_check_path" {
  description = "Path the load balancer polls; a 200 marks a task ready."
  type        = string
}

variable "health_check_grace_seconds" {
  description = "Seconds after a task starts before failed health checks count (startup, migrations, model load)."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Days to keep container logs."
  type        = number
  default     = 365
}

variable "kms_key_arn" {
  description = "KMS key for the log group and for decrypting secrets."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
