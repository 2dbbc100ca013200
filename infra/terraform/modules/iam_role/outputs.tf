output "arn" {
  description = "The role's ARN, once its policies are in place."
  value       = aws_iam_role.this.arn
  depends_on  = [aws_iam_role_policy.this, aws_iam_role_policy_attachment.this]
}

output "name" {
  description = "The role's name, once its policies are in place."
  value       = aws_iam_role.this.name
  depends_on  = [aws_iam_role_policy.this, aws_iam_role_policy_attachment.this]
}
