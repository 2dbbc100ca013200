output "arn" {
  description = "ARN of the secret, once its first value is written (a task that starts earlier could not read it)."
  value       = aws_secretsmanager_secret.this.arn
  depends_on  = [aws_secretsmanager_secret_version.this]
}

output "value_from" {
  description = "ECS `secrets` valueFrom per JSON field (<arn>:<field>::); empty for a plain-string secret, whose valueFrom is `arn`."
  value       = { for field in local.fields : field => "${aws_secretsmanager_secret.this.arn}:${field}::" }
  depends_on  = [aws_secretsmanager_secret_version.this]
}
