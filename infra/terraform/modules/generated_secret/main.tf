# A Secrets Manager secret whose value Terraform generates once and never keeps: the value goes
# through the write-only `secret_string_wo` (Terraform >= 1.11), so it is in neither a plan nor
# the state, and nothing but Secrets Manager holds it. Raising `generation` writes a new value.
#
# The value is two version-4 UUIDs without their hyphens (uuid() draws from crypto/rand: 244
# random bits in 64 hex digits). Terraform's functions, not an AWS API or another provider: a
# plan stays offline, and the stack needs only hashicorp/aws.

locals {
  generated = replace("${uuid()}${uuid()}", "-", "")
  json      = var.generated_key != null
  value     = local.json ? jsonencode(merge(var.fixed_fields, { (var.generated_key) = local.generated })) : local.generated
  fields    = local.json ? concat(keys(var.fixed_fields), [var.generated_key]) : []
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:No rotation Lambda: a new value is `generation + 1` and an apply (README), because consumers that keep a copy must change with it: MLflow keeps the admin password it was first started with in its user store (mlflow module README).
  name_prefix             = var.name_prefix
  description             = var.description
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "this" {
  secret_id                = aws_secretsmanager_secret.this.id
  secret_string_wo         = local.value
  secret_string_wo_version = var.generation
}
