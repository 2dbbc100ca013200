variable "name" {
  description = "Name of the stack, the prefix of its resources (recops-dev): the apply rights are scoped to resources named <name>-*, <name>/* or /ecs/<name>-*, and the roles are <name>-github-deploy and <name>-github-plan."
  type        = string
}

variable "github_repository" {
  description = "The repository whose workflows may assume the roles, as GitHub spells it (owner/name): the sub claim is compared case-sensitively."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$", var.github_repository))
    error_message = "github_repository must be owner/name, e.g. example-org/recops (no wildcards)."
  }
}

variable "github_environment" {
  description = "GitHub environment whose jobs may assume the deploy role (sub repo:<github_repository>:environment:<github_environment>); protect it in the repository's settings (required reviewers for prod)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,255}$", var.github_environment))
    error_message = "github_environment must be one environment's name: letters, digits, '.', '_' or '-', no wildcards."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's IAM OIDC provider for token.actions.githubusercontent.com. IAM holds one provider per URL and account: the second environment in an account sets false and passes the first one's as oidc_provider_arn."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "ARN of the account's existing GitHub OIDC provider, with create_oidc_provider = false (null otherwise)."
  type        = string
  default     = null

  validation {
    condition     = var.create_oidc_provider == (var.oidc_provider_arn == null)
    error_message = "Give oidc_provider_arn exactly when create_oidc_provider is false."
  }
  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be arn:<partition>:iam::<account>:oidc-provider/token.actions.githubusercontent.com."
  }
}

variable "kms_key_arn" {
  description = "The stack's KMS key (its account is the account of every ARN here)."
  type        = string
}

variable "terraform_state_bucket" {
  description = "S3 bucket holding the environment's Terraform state (backend \"s3\" bucket)."
  type        = string
}

variable "terraform_state_key" {
  description = "Key of the environment's state in that bucket (backend \"s3\" key, e.g. recops/dev.tfstate); its lock file is <key>.tflock."
  type        = string
}

variable "terraform_state_kms_key_arn" {
  description = "Customer-managed KMS key of the state bucket, if it has one (null: SSE-S3 or the AWS-managed aws/s3 key, which need no grant)."
  type        = string
  default     = null
}

variable "allow_terraform_apply" {
  description = "Give the deploy role the rights to `terraform apply` this stack (broad: README). False leaves it what CD does besides: push images, roll out the bento, read the CD secrets and the state."
  type        = bool
  default     = true
}

variable "ecr_repository_arns" {
  description = "ECR repositories CD pushes images to (the training image and the bento)."
  type        = list(string)
}

variable "secret_arns" {
  description = "Secrets Manager secrets the CD steps read (the Prefect API URL and key, the MLflow credentials)."
  type        = list(string)
  default     = []
}

variable "bento_service_arn" {
  description = "ECS service of the bento that CD rolls new images out to."
  type        = string
}

variable "bento_task_definition_family" {
  description = "Task definition family of the bento service (CD registers revisions of it, tagged with the model version)."
  type        = string
}

variable "bento_task_role_arns" {
  description = "Roles a revision of the bento's task definition names (execution and task role): the only roles CD itself passes to ECS."
  type        = list(string)
}

variable "aws_managed_policy_arns" {
  description = "AWS-managed policies the stack attaches to its own roles (the Batch instance role's AmazonEC2ContainerServiceforEC2Role); the deploy role may attach these and the stack's own <name>-* policies, nothing else."
  type        = list(string)
  default     = []
}

variable "dns_zone_id" {
  description = "Route 53 zone in which the stack creates its host names (null: none)."
  type        = string
  default     = null
}

variable "dns_record_names" {
  description = "The host names the stack creates in dns_zone_id: the only records the deploy role may change there."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for the provider, roles and policies."
  type        = map(string)
  default     = {}
}
