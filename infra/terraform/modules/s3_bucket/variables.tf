variable "name_prefix" {
  description = "Bucket name prefix (at most 37 characters); AWS appends a unique suffix, so two environments or accounts never collide on the global bucket namespace."
  type        = string

  validation {
    condition     = length(var.name_prefix) <= 37 && can(regex("^[a-z0-9][a-z0-9.-]*$", var.name_prefix))
    error_message = "name_prefix must be lower-case letters, digits, dots and hyphens, at most 37 characters."
  }
}

variable "kms_key_arn" {
  description = "KMS key for default server-side encryption (SSE-KMS with an S3 bucket key)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept before it expires."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (dev and tests only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to the bucket."
  type        = map(string)
  default     = {}
}
