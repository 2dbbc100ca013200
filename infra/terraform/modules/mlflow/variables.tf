variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev (the service is <name>-mlflow)."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster the MLflow server runs in."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the server and the database."
  type        = string
}

variable "vpc_cidr_block" {
  description = "IPv4 range of the VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two zones) for the tasks, the internal load balancer and the database."
  type        = list(string)
}

variable "allowed_cidr_blocks" {
  description = "Client ranges allowed to reach the tracking server besides allowed_security_groups (a VPN range for people)."
  type        = list(string)
  default     = []
}

variable "allowed_security_groups" {
  description = "Client security groups allowed to reach the tracking server, by a name known at plan time (Batch instances, the Prefect worker and its flow runs). Serving tasks are not among them."
  type        = map(string)
  default     = {}
}

variable "admin_username" {
  description = "User name of MLflow's basic-auth admin, which the server creates on its first start and clients log in as."
  type        = string
  default     = "recops"
}

variable "admin_password_generation" {
  description = "Raise by one to generate a new admin password into the secret (then change it in MLflow too: see README)."
  type        = number
  default     = 1
}

variable "kms_key_arn" {
  description = "KMS key for the database, its secret, the artifact bucket, the image repository and the logs."
  type        = string
}

variable "image_tag" {
  description = "Tag of the MLflow server image in this module's repository (built from infra/docker/mlflow). Null runs no task until an image has been pushed."
  type        = string
  default     = null
}

variable "hostnames" {
  description = "Extra host names clients use for the server (a private DNS alias); the load balancer's own name is always allowed."
  type        = list(string)
  default     = []
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the load balancer (needs hostname); null serves HTTP inside the VPC."
  type        = string
  default     = null
}

variable "hostname" {
  description = "DNS name clients use for the server, covered by certificate_arn (e.g. mlflow.recops.internal); null uses the load balancer's name (HTTP only)."
  type        = string
  default     = null
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone in which to create hostname as an alias of the load balancer; null creates no record."
  type        = string
  default     = null
}

variable "cpu" {
  description = "Fargate CPU units of the server task."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory of the server task in MiB."
  type        = number
  default     = 2048
}

variable "task_count" {
  description = "Server tasks when an image is set (stateless: the state is in PostgreSQL and S3)."
  type        = number
  default     = 1
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL backend store."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_engine_version" {
  description = "PostgreSQL major version; RDS applies minor versions in the maintenance window."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gib" {
  description = "Initial storage of the database in GiB (grows automatically up to db_max_allocated_storage_gib)."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage_gib" {
  description = "Ceiling for storage autoscaling in GiB."
  type        = number
  default     = 100
}

variable "db_multi_az" {
  description = "Standby in a second zone (prod)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery)."
  type        = number
  default     = 7
}

variable "db_password_rotation_schedule" {
  description = "When RDS rotates the database password (an EventBridge cron in UTC); the server restarts 70 minutes later to pick up the new one."
  type        = string
  default     = "cron(0 3 ? * SUN *)"
}

variable "server_restart_schedule" {
  description = "When the server's tasks are replaced to read the rotated password: after the one-hour rotation window of db_password_rotation_schedule."
  type        = string
  default     = "cron(10 4 ? * SUN *)"
}

variable "deletion_protection" {
  description = "Protect the database and load balancer from deletion, and take a final snapshot (prod)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the artifact bucket and image repository with their contents (dev and tests only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days to keep server logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
