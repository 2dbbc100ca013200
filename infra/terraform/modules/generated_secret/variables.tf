variable "name_prefix" {
  description = "Prefix of the secret's name, e.g. recops-dev/mlflow/admin- (Secrets Manager appends a unique suffix)."
  type        = string
}

variable "description" {
  description = "What the secret is for and who reads it."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the secret; readers need kms:Decrypt on it."
  type        = string
}

variable "generated_key" {
  description = "JSON key that holds the generated value, beside fixed_fields (e.g. MLFLOW_TRACKING_PASSWORD). Null: the secret is the generated value alone, a plain string."
  type        = string
  default     = null
}

variable "fixed_fields" {
  description = "Fixed JSON fields stored beside generated_key (e.g. the user name). Only with generated_key."
  type        = map(string)
  default     = {}

  validation {
    condition     = length(var.fixed_fields) == 0 || var.generated_key != null
    error_message = "fixed_fields need generated_key: a plain-string secret has no fields."
  }
}

variable "generation" {
  description = "Raise by one to generate and write a new value on the next apply (the old one stays as the version AWSPREVIOUS)."
  type        = number
  default     = 1
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored (0 deletes at once; 7 to 30 otherwise)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags added to the secret."
  type        = map(string)
  default     = {}
}
