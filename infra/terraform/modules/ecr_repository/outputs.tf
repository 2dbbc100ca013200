output "name" {
  description = "Repository name."
  value       = aws_ecr_repository.this.name
}

output "arn" {
  description = "Repository ARN."
  value       = aws_ecr_repository.this.arn
}

output "url" {
  description = "Repository URL (registry/name), what `docker push` and task definitions use."
  value       = aws_ecr_repository.this.repository_url
}

output "registry" {
  description = "Registry host (account.dkr.ecr.region.amazonaws.com)."
  value       = split("/", aws_ecr_repository.this.repository_url)[0]
}
