variable "name" {
  description = "Prefix for every resource name, e.g. recops-dev. Job queues are <name>-gpu and <name>-cpu."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for Batch instances. They must reach ECS, ECR and CloudWatch (NAT or interface endpoints) and S3 (gateway endpoint), or instances never join the cluster and jobs stay RUNNABLE."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for Batch instances (outbound only)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for the datastore bucket and the training image repository."
  type        = string
}

variable "job_policy_documents" {
  description = "Policy documents (JSON) added to the Batch job role beside the datastore access, e.g. read the recops store or a secret for @secrets. Statement IDs must be unique across them."
  type        = list(string)
  default     = []
}

variable "service_role_arn" {
  description = "Role that AWS Batch itself acts as. Null (recommended) uses Batch's service-linked role AWSServiceRoleForBatch, which AWS maintains; an emulator that lacks it takes an explicit role."
  type        = string
  default     = null
}

variable "gpu_instance_types" {
  description = "Instance types or families the GPU environment may launch. Every size of a family counts, so g5 covers g5.xlarge (4 vCPU, 16 GiB, 1 A10G) up to g5.48xlarge. A job asking for more GPUs, vCPUs or memory than the largest allowed type has stays RUNNABLE."
  type        = list(string)
  default     = ["g5", "g6"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g5g|g6|g6e|gr6|p3|p4d|p4de|p5|p5e)(\\.|$)", t))])
    error_message = "gpu_instance_types must name NVIDIA GPU families or types (g4dn, g5, g6, g6e, gr6, p3, p4d, p5...)."
  }
}

variable "gpu_image_type" {
  description = "Batch image type of the GPU environment: ECS_AL2_NVIDIA or ECS_AL2023_NVIDIA, the ECS GPU-optimised AMIs with the NVIDIA driver and container toolkit, so `@batch(gpu=1)` gets a GPU. Batch picks the current AMI; no AMI lookup happens at plan time."
  type        = string
  default     = "ECS_AL2_NVIDIA"

  validation {
    condition     = contains(["ECS_AL2_NVIDIA", "ECS_AL2023_NVIDIA"], var.gpu_image_type)
    error_message = "gpu_image_type must be ECS_AL2_NVIDIA or ECS_AL2023_NVIDIA."
  }
}

variable "gpu_max_vcpus" {
  description = "Ceiling of the GPU environment in vCPUs (g5.xlarge has 4, g5.12xlarge 48). It must cover the largest single job, or that job stays RUNNABLE."
  type        = number
  default     = 32

  validation {
    condition     = var.gpu_max_vcpus >= 4
    error_message = "gpu_max_vcpus must be at least 4, the smallest g5/g6 instance."
  }
}

variable "cpu_instance_types" {
  description = "Instance types or families of the CPU environment."
  type        = list(string)
  default     = ["c6i", "m6i", "r6i"]
}

variable "cpu_max_vcpus" {
  description = "Ceiling of the CPU environment in vCPUs."
  type        = number
  default     = 64
}

variable "use_spot" {
  description = "Run both environments on Spot capacity (cheaper, interruptible: the training step retries, see [resources] retries in the recops config)."
  type        = bool
  default     = false
}

variable "root_volume_gib" {
  description = "Root volume of Batch instances in GiB: it holds the training image (CUDA torch is several GB) and the job's scratch space."
  type        = number
  default     = 100
}

variable "runnable_timeout_minutes" {
  description = "Cancel a job that has sat RUNNABLE this long because no environment of its queue could ever run it (asks for more than the instance types or max vCPUs allow). Batch records the reason on the job."
  type        = number
  default     = 30

  validation {
    condition     = var.runnable_timeout_minutes >= 10 && var.runnable_timeout_minutes <= 1440
    error_message = "runnable_timeout_minutes must be between 10 and 1440 (Batch's limits)."
  }
}

variable "training_image_tag" {
  description = "Tag in the training image repository that Batch jobs run (an image with recops and CUDA torch). Null leaves the image out of the Metaflow profile (Metaflow's default Python image)."
  type        = string
  default     = null
}

variable "datastore_noncurrent_version_days" {
  description = "Days overwritten datastore objects are kept."
  type        = number
  default     = 30
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket and repository with their contents (dev and tests only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
