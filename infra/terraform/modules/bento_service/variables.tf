variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev (the service is <name>-bento, the repository <name>/<bento_name>)."
  type        = string
}

variable "bento_name" {
  description = "Name of the bento, used for the image repository."
  type        = string
  default     = "session-recommender"
}

variable "image_tag" {
  description = "Tag of the serving image the ECS service is created with (pushed to this module's repository). Null creates no service yet: the first apply creates the repository before any image exists. Once the service exists, the deployer sets its image and changing this has no effect on it."
  type        = string
  default     = null
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
  description = "IPv4 range of the VPC."
  type        = string
}

variable "allowed_security_groups" {
  description = "Security groups of the service's callers, by a name known at plan time (the backends that ask for recommendations)."
  type        = map(string)
  default     = {}
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks (and for the load balancer when internal)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets for an internet-facing load balancer."
  type        = list(string)
  default     = []
}

variable "internal" {
  description = "Internal load balancer: the recommender is called by other backends inside the VPC. An internet-facing one requires certificate_arn."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "Client ranges allowed to call the service besides allowed_security_groups (a VPN, a peered network)."
  type        = list(string)
  default     = []
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the load balancer (needs hostname); null serves HTTP (internal only)."
  type        = string
  default     = null
}

variable "hostname" {
  description = "DNS name clients use for the service, covered by certificate_arn; null uses the load balancer's name (HTTP only)."
  type        = string
  default     = null
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone in which to create hostname as an alias of the load balancer; null creates no record."
  type        = string
  default     = null
}

variable "require_api_token" {
  description = "Set RECOPS_API_TOKEN_REQUIRED=1: a task that gets no token refuses to start instead of serving unauthenticated (prod)."
  type        = bool
  default     = true
}

variable "api_token_generation" {
  description = "Raise by one to generate a new API token (tasks read it when they start: redeploy, and give clients the new one)."
  type        = number
  default     = 1
}

variable "container_port" {
  description = "Port `bentoml serve` listens on in the image."
  type        = number
  default     = 3000
}

variable "cpu" {
  description = "Fargate CPU units per task."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory per task in MiB (the model is loaded in every server worker)."
  type        = number
  default     = 2048
}

variable "environment" {
  description = "Extra environment variables of the bento container (e.g. RECOPS_BENTO_BATCHING)."
  type        = map(string)
  default     = {}
}

variable "min_tasks" {
  description = "Fewest tasks once the service exists; at least two across zones for availability in prod."
  type        = number
  default     = 1
}

variable "max_tasks" {
  description = "Most tasks that autoscaling may start."
  type        = number
  default     = 4

  validation {
    condition     = var.max_tasks >= 1
    error_message = "max_tasks must be at least 1."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation that autoscaling keeps the service at."
  type        = number
  default     = 60
}

variable "requests_per_task_target" {
  description = "Load-balancer requests per task per minute that autoscaling keeps the service at."
  type        = number
  default     = 3000
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion (prod)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the repository with its images (dev and tests only)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for the repository and the logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the service's logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "store_uri" {
  description = "RECOPS_STORE of the service (s3://bucket/prefix): where it writes its served-list log and reads the trending lists; null: neither."
  type        = string
  default     = null
}

variable "store_policy_json" {
  description = "Task role policy for store_uri (the recops_store module's serving_policy_json); needed with store_uri."
  type        = string
  default     = null
}
