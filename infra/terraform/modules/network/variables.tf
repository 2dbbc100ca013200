variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 range of the VPC. Private subnets take the lower /20 blocks, public ones the upper /24 blocks."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be a valid IPv4 range of /16 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread subnets over (at least two: RDS and the load balancers need them). Given, not looked up, so that a plan makes no AWS call."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4
    error_message = "Give between two and four availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway shared by all private subnets (cheaper, one zone's outage cuts egress) instead of one per zone."
  type        = bool
  default     = false
}

variable "workloads" {
  description = "Kinds of workload that only call out; each gets its own security group (same egress rules), so that services can admit a kind by reference."
  type        = list(string)
  default     = ["batch", "prefect-worker", "flow-runs"]

  validation {
    condition     = length(var.workloads) > 0 && alltrue([for w in var.workloads : can(regex("^[a-z][a-z0-9-]{0,20}$", w))])
    error_message = "workloads must be short lower-case names (letters, digits, hyphens)."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the VPC flow-log group."
  type        = string
}

variable "flow_log_retention_days" {
  description = "Days to keep VPC flow logs (rejected traffic only)."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}
