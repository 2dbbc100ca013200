variable "name" {
  description = "Repository name, e.g. recops-dev/session-recommender."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images at rest."
  type        = string
}

variable "keep_images" {
  description = "How many most recent images to keep; older ones expire (the running tag is always among the newest)."
  type        = number
  default     = 50
}

variable "force_delete" {
  description = "Let `terraform destroy` delete a repository that still holds images (dev and tests only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to the repository."
  type        = map(string)
  default     = {}
}
