output "deploy_role_arn" {
  description = "Role for CD jobs in the GitHub environment (aws-actions/configure-aws-credentials `role-to-assume`)."
  value       = aws_iam_role.this["deploy"].arn
  depends_on  = [aws_iam_role_policy_attachment.this]
}

output "plan_role_arn" {
  description = "Role for pull-request jobs that post `terraform plan`."
  value       = aws_iam_role.this["plan"].arn
  depends_on  = [aws_iam_role_policy_attachment.this, aws_iam_role_policy.plan_state]
}

output "oidc_provider_arn" {
  description = "The account's OIDC provider for token.actions.githubusercontent.com (created here, or the one given): pass it to the next environment in the same account."
  value       = local.oidc_provider_arn
}

output "subjects" {
  description = "The exact `sub` claims each role trusts: deploy and plan."
  value       = local.subjects
}
