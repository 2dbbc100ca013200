variable "name_prefix" {
  description = "Prefix of the role's name (IAM appends a unique suffix)."
  type        = string
}

variable "description" {
  description = "What the role is for."
  type        = string
  default     = null
}

variable "service" {
  description = "The AWS service principal that assumes the role, e.g. ecs-tasks.amazonaws.com."
  type        = string
}

variable "policy_name" {
  description = "Name of the inline policy; null for none."
  type        = string
  default     = null
}

variable "policy_json" {
  description = "The inline policy document (JSON), used when policy_name is set."
  type        = string
  default     = null
}

variable "managed_policy_arns" {
  description = "Managed policies to attach."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}
