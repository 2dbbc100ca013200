variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev (the bucket is <name>-store-<suffix>)."
  type        = string
}

variable "prefix" {
  description = "Key prefix of the store inside the bucket: RECOPS_STORE is s3://<bucket>/<prefix>. No leading or trailing slash."
  type        = string
  default     = "recops"

  validation {
    condition     = can(regex("^[a-zA-Z0-9!_.*'()-]+(/[a-zA-Z0-9!_.*'()-]+)*$", var.prefix))
    error_message = "prefix must be one or more path segments of safe S3 key characters, with no leading, trailing or double slash."
  }
}

variable "kms_key_arn" {
  description = "KMS key for the bucket's default encryption (SSE-KMS)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object is kept (an older manifest or deployment record can be restored from its versions)."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its contents (dev and tests only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
