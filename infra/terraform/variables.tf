variable "name" {
  description = "Name of the environment's stack, the prefix of every resource: recops-dev, recops-prod. Lower-case letters, digits and hyphens, at most 16 characters (load balancer and bucket names are short)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name))
    error_message = "name must start with a letter and hold 2 to 16 lower-case letters, digits or hyphens."
  }
}

variable "availability_zones" {
  description = "Availability zones to use (two or more), given rather than looked up so that a plan needs no AWS call."
  type        = list(string)
}

variable "vpc_cidr_block" {
  description = "IPv4 range of the VPC."
  type        = string
  default     = "10.20.0.0/16"
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (dev) instead of one per zone (prod)."
  type        = bool
  default     = false
}

variable "client_cidr_blocks" {
  description = "Ranges allowed to reach MLflow and the bento service (a VPN for people, a peered network). The VPC itself is not: in-VPC callers are admitted by security group."
  type        = list(string)
  default     = []
}

variable "mlflow_client_security_group_ids" {
  description = "Security groups admitted to MLflow besides Batch, the Prefect worker and its flow runs (which always are)."
  type        = list(string)
  default     = []
}

variable "bento_client_security_group_ids" {
  description = "Security groups of the backends that call the recommender (the bento load balancer admits these and client_cidr_blocks, nothing else)."
  type        = list(string)
  default     = []
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS on the MLflow and bento load balancers, covering mlflow_hostname and bento_hostname (port 80 then redirects to 443); null serves plain HTTP inside the VPC."
  type        = string
  default     = null
}

variable "mlflow_hostname" {
  description = "DNS name of the MLflow server (required with certificate_arn): MLFLOW_TRACKING_URI is https://<mlflow_hostname>."
  type        = string
  default     = null
}

variable "bento_hostname" {
  description = "DNS name of the bento service (required with certificate_arn)."
  type        = string
  default     = null
}

variable "dns_zone_id" {
  description = "Route 53 hosted zone (private, for the internal load balancers) in which to create mlflow_hostname and bento_hostname as aliases; null creates no records."
  type        = string
  default     = null
}

# --- Store ----------------------------------------------------------------------------------------

variable "store_prefix" {
  description = "Key prefix of the recops store in its bucket: RECOPS_STORE is s3://<bucket>/<store_prefix>."
  type        = string
  default     = "recops"
}

# --- Metaflow -----------------------------------------------------------------------------------

variable "gpu_instance_types" {
  description = "GPU instance families or types for Metaflow's GPU queue."
  type        = list(string)
  default     = ["g5", "g6"]
}

variable "gpu_max_vcpus" {
  description = "Ceiling of the GPU compute environment in vCPUs."
  type        = number
  default     = 32
}

variable "cpu_max_vcpus" {
  description = "Ceiling of the CPU compute environment in vCPUs."
  type        = number
  default     = 64
}

variable "use_spot" {
  description = "Run Batch jobs on Spot instances."
  type        = bool
  default     = false
}

variable "training_image_tag" {
  description = "Tag of the training image that Metaflow's Batch jobs run; null leaves it out of the Metaflow profile."
  type        = string
  default     = null
}

# --- MLflow -------------------------------------------------------------------------------------

variable "mlflow_image_tag" {
  description = "Tag of the MLflow server image (infra/docker/mlflow) in its repository; null runs no server task yet."
  type        = string
  default     = null
}

variable "mlflow_db_instance_class" {
  description = "RDS instance class of MLflow's PostgreSQL."
  type        = string
  default     = "db.t4g.micro"
}

variable "mlflow_db_multi_az" {
  description = "Standby database in a second zone."
  type        = bool
  default     = false
}

variable "mlflow_admin_password_generation" {
  description = "Raise by one (in envs/<env>/main.tf, committed: going back writes a new value too) to generate a new MLflow admin password; then set it in MLflow (modules/mlflow/README.md)."
  type        = number
  default     = 1
}

# --- Prefect ------------------------------------------------------------------------------------

variable "prefect_work_pool" {
  description = "Prefect ECS work pool that the worker polls."
  type        = string
  default     = "recops-ecs"
}

variable "prefect_worker_image_tag" {
  description = "Tag of the Prefect worker image (infra/docker/prefect-worker) in its repository; null runs no worker yet."
  type        = string
  default     = null
}

variable "prefect_worker_count" {
  description = "Prefect worker tasks once the image is set (0 pauses scheduled retraining)."
  type        = number
  default     = 1
}

# --- Bento --------------------------------------------------------------------------------------

variable "bento_image_tag" {
  description = "Tag of the serving image the bento service is created with. Null creates no service yet; once it exists, the deployer (recops' ECS backend) sets its image and Terraform leaves it alone."
  type        = string
  default     = null
}

variable "bento_api_token_generation" {
  description = "Raise by one (in envs/<env>/main.tf, committed) to generate a new bento API token; redeploy the bento and give callers the new one."
  type        = number
  default     = 1
}

variable "bento_require_api_token" {
  description = "RECOPS_API_TOKEN_REQUIRED=1 on the bento: a task without its token refuses to start."
  type        = bool
  default     = true
}

variable "bento_min_tasks" {
  description = "Fewest bento tasks while an image is set."
  type        = number
  default     = 1
}

variable "bento_max_tasks" {
  description = "Most bento tasks autoscaling may start."
  type        = number
  default     = 4
}

# --- GitHub Actions (OIDC) -------------------------------------------------------------------------

variable "github_repository" {
  description = "GitHub repository (owner/name, as GitHub spells it) whose workflows get the deploy role (jobs in github_environment) and the plan role (pull requests) through GitHub's OIDC provider; \"\" creates no GitHub access."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository must be owner/name (e.g. example-org/recops), or \"\" for no GitHub access."
  }
}

variable "github_environment" {
  description = "GitHub environment whose jobs may assume the deploy role; null: the stack's name. The envs pass dev and prod."
  type        = string
  default     = null
}

variable "github_oidc_provider_arn" {
  description = "The account's existing IAM OIDC provider for token.actions.githubusercontent.com (IAM holds one per account: the second environment in an account passes the first one's output github_actions.oidc_provider_arn); \"\" creates it."
  type        = string
  default     = ""
  nullable    = false
}

variable "terraform_state_bucket" {
  description = "S3 bucket of the environment's Terraform state (the backend's bucket), which the GitHub roles read (plan) and write (deploy); required with github_repository."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || var.terraform_state_bucket != ""
    error_message = "github_repository needs terraform_state_bucket: the bucket given to `terraform init -backend-config=bucket=...`."
  }
}

variable "terraform_state_key" {
  description = "Key of the environment's state in terraform_state_bucket (the backend's key, e.g. recops/dev.tfstate); its lock file is <key>.tflock."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == "" || var.terraform_state_key != null
    error_message = "github_repository needs terraform_state_key: the key given to `terraform init -backend-config=key=...`."
  }
}

variable "terraform_state_kms_key_arn" {
  description = "Customer-managed KMS key of the state bucket, if any (null: SSE-S3 or aws/s3)."
  type        = string
  default     = null
}

# --- Lifecycle ----------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Protect the database and load balancers from deletion and keep a final database snapshot (prod)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Let `terraform destroy` empty buckets and repositories (dev only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days to keep CloudWatch logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource of the stack."
  type        = map(string)
  default     = {}
}
