output "datastore_bucket" {
  description = "Name of the Metaflow datastore bucket."
  value       = module.datastore.id
}

output "datastore_bucket_arn" {
  description = "ARN of the Metaflow datastore bucket."
  value       = module.datastore.arn
}

output "gpu_job_queue_arn" {
  description = "Job queue of the GPU environment (RECOPS_BATCH_GPU_QUEUE; `@batch(queue=...)` for steps that need a GPU)."
  value       = aws_batch_job_queue.this["gpu"].arn
}

output "cpu_job_queue_arn" {
  description = "Job queue of the CPU environment (the profile's METAFLOW_BATCH_JOB_QUEUE)."
  value       = aws_batch_job_queue.this["cpu"].arn
}

output "job_queue_names" {
  description = "Queue names by kind, for `--with batch:queue=NAME`."
  value       = { for k, q in aws_batch_job_queue.this : k => q.name }
}

output "compute_environment_arns" {
  description = "Compute environments by kind (gpu, cpu)."
  value       = { for k, ce in aws_batch_compute_environment.this : k => ce.arn }
}

output "job_role_arn" {
  description = "Role that Metaflow's Batch jobs run as (METAFLOW_ECS_S3_ACCESS_IAM_ROLE)."
  value       = module.job_role.arn
}

output "instance_role_name" {
  description = "Role of the Batch instances (ECS agent)."
  value       = module.instance_role.name
}

output "client_policy_arn" {
  description = "Managed policy to attach to whoever launches runs (people, CI, Prefect flow runs)."
  value       = aws_iam_policy.client.arn
}

output "training_image_repository_url" {
  description = "ECR repository for the training image that Batch jobs run."
  value       = module.training_image.url
}

output "metaflow_profile" {
  description = "Metaflow client configuration as a map of METAFLOW_* settings (see metaflow_profile_json)."
  value       = local.metaflow_profile
}

output "metaflow_profile_json" {
  description = "Metaflow client configuration, as terraform-aws-metaflow's output of the same name: save as ~/.metaflowconfig/config_<profile>.json and `export METAFLOW_PROFILE=<profile>`."
  value       = jsonencode(local.metaflow_profile)
}

output "training_image_repository_arn" {
  description = "ARN of the training image repository."
  value       = module.training_image.arn
}
