output "uri" {
  description = "RECOPS_STORE: s3://<bucket>/<prefix>."
  value       = "s3://${module.bucket.id}/${var.prefix}"
}

output "bucket" {
  description = "Name of the store bucket."
  value       = module.bucket.id
}

output "bucket_arn" {
  description = "ARN of the store bucket."
  value       = module.bucket.arn
}

output "read_write_policy_arn" {
  description = "Managed policy: list the bucket, read, write and delete under the prefix (the cycle's flow runs)."
  value       = aws_iam_policy.read_write.arn
}

output "read_only_policy_json" {
  description = "Policy document: list the bucket and read under the prefix (Batch jobs reading a snapshot), for a role's inline policy."
  value       = data.aws_iam_policy_document.read_only.json
}

output "serving_policy_json" {
  description = "Policy document for the bento service's task role: write the served-list log (served/*), read serving/trending.json."
  value       = data.aws_iam_policy_document.serving.json
}
