# Placeholders for `make infra-check`'s offline plan of dev only (infra/check.sh passes this file
# when an env folder has one; a real plan or apply never reads it). Nothing real: they make the
# plan cover the GitHub Actions roles and the creation of the account's GitHub OIDC provider.
github_repository      = "example-org/recops"
terraform_state_bucket = "example-recops-terraform-state"
