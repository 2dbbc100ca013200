# Placeholders for `make infra-check`'s offline plan of prod only (infra/check.sh passes this file
# when an env folder has one). Nothing real: the account 000000000000 does not exist, the plan
# makes no AWS call, and a real plan or apply never reads this file (terraform loads
# terraform.tfvars and *.auto.tfvars by itself, not this). They exercise prod's HTTPS path:
# the certificate, the host names and their Route 53 records.
certificate_arn = "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"
mlflow_hostname = "mlflow.recops-prod.example.internal"
bento_hostname  = "recommender.recops-prod.example.internal"
dns_zone_id     = "Z00000000000000000000"
# The GitHub Actions roles, reusing the account's GitHub OIDC provider (dev creates it).
github_repository        = "example-org/recops"
terraform_state_bucket   = "example-recops-terraform-state"
github_oidc_provider_arn = "arn:aws:iam::000000000000:oidc-provider/token.actions.githubusercontent.com"
