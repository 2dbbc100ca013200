# Metaflow on AWS Batch: an S3 datastore, a GPU and a CPU compute environment that idle at zero
# instances, one job queue each, and the IAM roles that a Batch instance and a Batch job need.
#
# Why GPU jobs sit RUNNABLE forever, and what here prevents it (see README.md):
#   1. no allowed instance type has a GPU, or enough vCPUs/memory   -> gpu_instance_types, validated
#   2. max_vcpus smaller than one instance of a fitting type         -> gpu_max_vcpus >= 4, validated
#   3. a non-GPU AMI, so the ECS agent registers no GPU              -> ec2_configuration ECS_*_NVIDIA
#   4. instances that cannot reach ECS/ECR (no NAT, no endpoints)    -> private subnets with NAT + S3 endpoint
#   5. an instance role without AmazonEC2ContainerServiceforEC2Role -> module.instance_role
#   6. desired vCPUs stuck above zero by an earlier update           -> min_vcpus = 0, desired ignored
# and a job that still cannot run is cancelled with the reason after runnable_timeout_minutes.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition           = data.aws_partition.current.partition
  region              = data.aws_region.current.name
  allocation_strategy = var.use_spot ? "SPOT_PRICE_CAPACITY_OPTIMIZED" : "BEST_FIT_PROGRESSIVE"
  compute_type        = var.use_spot ? "SPOT" : "EC2"

  environments = {
    gpu = {
      instance_types = var.gpu_instance_types
      max_vcpus      = var.gpu_max_vcpus
      image_type     = var.gpu_image_type
    }
    cpu = {
      instance_types = var.cpu_instance_types
      max_vcpus      = var.cpu_max_vcpus
      image_type     = "ECS_AL2023"
    }
  }
}

module "datastore" {
  source = "../s3_bucket"

  name_prefix             = "${var.name}-metaflow-"
  kms_key_arn             = var.kms_key_arn
  noncurrent_version_days = var.datastore_noncurrent_version_days
  force_destroy           = var.force_destroy
  tags                    = var.tags
}

module "training_image" {
  source = "../ecr_repository"

  name         = "${var.name}/train"
  kms_key_arn  = var.kms_key_arn
  force_delete = var.force_destroy
  tags         = var.tags
}

# --- Batch instances -------------------------------------------------------------------------

# The ECS agent on each instance registers with the cluster, pulls images from ECR and ships
# container logs; the AWS-managed policy is exactly that set.
module "instance_role" {
  source              = "../iam_role"
  name_prefix         = "${var.name}-batch-instance-"
  service             = "ec2.amazonaws.com"
  managed_policy_arns = ["arn:${local.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"]
  tags                = var.tags
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = "${var.name}-batch-instance-"
  role        = module.instance_role.name
  tags        = var.tags
}

resource "aws_launch_template" "batch" {
  name_prefix = "${var.name}-batch-"
  description = "Encrypted root volume and IMDSv2 for Metaflow's Batch instances"
  tags        = var.tags

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = var.root_volume_gib
      volume_type = "gp3"
      # The AWS-managed EBS key: a customer key would also need a grant for the Auto Scaling
      # service-linked role, without which instances fail to launch and jobs stay RUNNABLE.
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # One hop: the ECS agent (host network) reaches the instance metadata, job containers (bridge
    # network) do not, so a job cannot borrow the instance role. Jobs get the job role's
    # credentials from ECS and their region from AWS_DEFAULT_REGION, which Metaflow sets.
    http_put_response_hop_limit = 1
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-batch" })
  }
}

# With service_role_arn null, Batch uses its service-linked role (AWSServiceRoleForBatch),
# AWS-managed and scoped to what Batch itself does.
resource "aws_batch_compute_environment" "this" {
  for_each = local.environments

  compute_environment_name_prefix = "${var.name}-${each.key}-"
  type                            = "MANAGED"
  service_role                    = var.service_role_arn
  tags                            = var.tags

  compute_resources {
    type                = local.compute_type
    allocation_strategy = local.allocation_strategy
    instance_type       = each.value.instance_types
    min_vcpus           = 0 # scale to zero: no instance runs while no job does
    max_vcpus           = each.value.max_vcpus
    subnets             = var.subnet_ids
    security_group_ids  = var.security_group_ids
    instance_role       = aws_iam_instance_profile.instance.arn
    tags                = merge(var.tags, { Name = "${var.name}-batch-${each.key}" })

    ec2_configuration {
      image_type = each.value.image_type
    }

    launch_template {
      launch_template_id = aws_launch_template.batch.id
      version            = aws_launch_template.batch.latest_version
    }
  }

  lifecycle {
    create_before_destroy = true
    # Batch moves desired vCPUs with the load; Terraform must not pin it.
    ignore_changes = [compute_resources[0].desired_vcpus]
  }
}

resource "aws_batch_job_queue" "this" {
  for_each = local.environments

  name     = "${var.name}-${each.key}"
  state    = "ENABLED"
  priority = 1
  tags     = var.tags

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.this[each.key].arn
  }

  dynamic "job_state_time_limit_action" {
    for_each = ["MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"]
    content {
      action           = "CANCEL"
      state            = "RUNNABLE"
      reason           = job_state_time_limit_action.value
      max_time_seconds = var.runnable_timeout_minutes * 60
    }
  }
}

# --- Batch jobs (METAFLOW_ECS_S3_ACCESS_IAM_ROLE) -----------------------------------------------

data "aws_iam_policy_document" "datastore_access" {
  statement {
    sid       = "ListDatastore"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [module.datastore.arn]
  }
  statement {
    sid       = "ReadWriteDatastore"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${module.datastore.arn}/*"]
  }
  statement {
    sid       = "UseDatastoreKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# The datastore, and what the caller adds (e.g. read the recops store's snapshots, read the
# MLflow credentials for @secrets). Statement IDs must differ across the documents.
data "aws_iam_policy_document" "job" {
  source_policy_documents = concat([data.aws_iam_policy_document.datastore_access.json], var.job_policy_documents)
}

module "job_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-batch-job-"
  description = "What a Metaflow step on Batch may do: read and write the datastore, and what the stack adds"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = "metaflow-job"
  policy_json = data.aws_iam_policy_document.job.json
  tags        = var.tags
}

# --- Who launches runs: people, CI, the Prefect flow runs ---------------------------------------

data "aws_iam_policy_document" "client" {
  source_policy_documents = [data.aws_iam_policy_document.datastore_access.json]

  statement {
    sid     = "SubmitToMetaflowQueues"
    actions = ["batch:SubmitJob"]
    resources = concat(
      [for q in aws_batch_job_queue.this : q.arn],
      ["arn:${local.partition}:batch:${local.region}:*:job-definition/metaflow_*"],
    )
  }
  statement {
    sid       = "ManageMetaflowJobDefinitions"
    actions   = ["batch:RegisterJobDefinition", "batch:TagResource"]
    resources = ["arn:${local.partition}:batch:${local.region}:*:job-definition/metaflow_*"]
  }
  statement {
    sid       = "WatchAndStopJobs"
    actions   = ["batch:TerminateJob"]
    resources = ["arn:${local.partition}:batch:${local.region}:*:job/*"]
  }
  statement {
    # Batch's Describe/List calls support no resource-level restriction.
    sid = "DescribeBatch"
    actions = [
      "batch:DescribeComputeEnvironments",
      "batch:DescribeJobDefinitions",
      "batch:DescribeJobQueues",
      "batch:DescribeJobs",
      "batch:ListJobs",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "PassJobRole"
    actions   = ["iam:PassRole"]
    resources = [module.job_role.arn]
  }
  statement {
    sid       = "ReadJobLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["arn:${local.partition}:logs:${local.region}:*:log-group:/aws/batch/job:log-stream:*"]
  }
}

resource "aws_iam_policy" "client" {
  name_prefix = "${var.name}-metaflow-client-"
  description = "Launch Metaflow runs on this stack's Batch queues and read their datastore"
  policy      = data.aws_iam_policy_document.client.json
  tags        = var.tags
}

# --- Client configuration -----------------------------------------------------------------------

locals {
  metaflow_profile = merge(
    {
      METAFLOW_DEFAULT_DATASTORE    = "s3"
      METAFLOW_DATASTORE_SYSROOT_S3 = "s3://${module.datastore.id}/metaflow"
      METAFLOW_DATATOOLS_S3ROOT     = "s3://${module.datastore.id}/data"
      # Every step of `--with batch` goes to the CPU queue; a step that needs a GPU names the GPU
      # queue (@batch(queue=...); recops' GpuQueue mutator does it from RECOPS_BATCH_GPU_QUEUE).
      METAFLOW_BATCH_JOB_QUEUE        = aws_batch_job_queue.this["cpu"].arn
      METAFLOW_ECS_S3_ACCESS_IAM_ROLE = module.job_role.arn
      # No metadata service in this stack: Metaflow keeps each task's metadata in the datastore
      # and syncs it back to the launching machine.
      METAFLOW_DEFAULT_METADATA = "local"
      # @secrets(sources=[<secret ARN>]) reads Secrets Manager inside the job (Metaflow passes
      # both settings on to Batch); a JSON secret's keys become environment variables.
      METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE       = "aws-secrets-manager"
      METAFLOW_AWS_SECRETS_MANAGER_DEFAULT_REGION = local.region
    },
    var.training_image_tag == null ? {} : {
      METAFLOW_BATCH_CONTAINER_REGISTRY = module.training_image.registry
      METAFLOW_BATCH_CONTAINER_IMAGE    = "${module.training_image.name}:${var.training_image_tag}"
    },
  )
}
