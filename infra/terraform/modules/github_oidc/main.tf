# GitHub Actions reaches AWS through GitHub's OIDC provider, with no stored keys: a job asks
# GitHub for an ID token (`permissions: id-token: write`) and trades it with
# sts:AssumeRoleWithWebIdentity for one hour of a role's credentials. Two roles per environment:
#
#   <name>-github-deploy  sub = repo:<github_repository>:environment:<github_environment>
#                         (jobs that run in that GitHub environment: CD). Pushes the training and
#                         bento images, rolls the bento out, reads the CD secrets, reads and
#                         writes the state, and (allow_terraform_apply) applies this stack.
#   <name>-github-plan    sub = repo:<github_repository>:pull_request (pull-request jobs without
#                         an environment). Reads the state and the stack's configuration for
#                         `terraform plan -lock=false -refresh=false` (README: why no refresh).
#
# Both subjects are compared with StringEquals: no wildcard, no other branch, tag or workflow.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = split(":", var.kms_key_arn)[4] # no sts call: a plan stays offline
  n          = var.name

  iam    = "arn:${local.partition}:iam::${local.account_id}"
  ecs    = "arn:${local.partition}:ecs:${local.region}:${local.account_id}"
  logs   = "arn:${local.partition}:logs:${local.region}:${local.account_id}"
  rds    = "arn:${local.partition}:rds:${local.region}:${local.account_id}"
  secret = "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret"
  elb    = "arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}"
  batch  = "arn:${local.partition}:batch:${local.region}:${local.account_id}"

  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : var.oidc_provider_arn
  subjects = {
    deploy = "repo:${var.github_repository}:environment:${var.github_environment}"
    plan   = "repo:${var.github_repository}:pull_request"
  }

  # What the stack is made of, by the names its modules give (README of each module).
  stack_roles             = "${local.iam}:role/${local.n}-*"
  stack_policies          = "${local.iam}:policy/${local.n}-*"
  stack_instance_profiles = "${local.iam}:instance-profile/${local.n}-*"
  stack_buckets           = "arn:${local.partition}:s3:::${local.n}-*"
  stack_repositories      = "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${local.n}/*"
  stack_secrets           = "${local.secret}:${local.n}/*"
  # RDS names the secret of a database's managed master password itself (rds!db-<id>).
  rds_managed_secrets = "${local.secret}:rds!db-*"
  stack_log_groups    = ["${local.logs}:log-group:/${local.n}/*", "${local.logs}:log-group:/ecs/${local.n}-*"]
  stack_ecs = [
    "${local.ecs}:cluster/${local.n}",
    "${local.ecs}:service/${local.n}/*",
    "${local.ecs}:task-definition/${local.n}-*:*",
  ]
  stack_batch     = ["${local.batch}:compute-environment/${local.n}-*", "${local.batch}:job-queue/${local.n}-*"]
  stack_schedules = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/default/${local.n}-*"
  # The modules' target groups are named rc-<random> (a target group name holds 32 characters).
  stack_elb = [
    "${local.elb}:loadbalancer/app/${local.n}-*/*",
    "${local.elb}:listener/app/${local.n}-*/*/*",
    "${local.elb}:targetgroup/rc-*/*",
  ]
  stack_rds = [
    "${local.rds}:db:${local.n}-*",
    "${local.rds}:pg:${local.n}-*",
    "${local.rds}:subgrp:${local.n}-*",
    "${local.rds}:snapshot:${local.n}-*", # final snapshot (prod)
    "${local.rds}:og:default:*",          # the engine's default option group, which RDS names
  ]
  # This module's own roles and policies: the deploy role may not change them (guard below).
  github_access = ["${local.iam}:role/${local.n}-github-*", "${local.iam}:policy/${local.n}-github-*"]

  state_bucket = "arn:${local.partition}:s3:::${var.terraform_state_bucket}"
  state_object = "${local.state_bucket}/${var.terraform_state_key}"
}

# --- The OIDC provider (one per account) ----------------------------------------------------------

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 1 : 0

  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
  # No thumbprint_list (optional since provider 5.81): for token.actions.githubusercontent.com IAM
  # verifies GitHub's certificate against its library of trusted root CAs and does not use a
  # thumbprint (IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM"); IAM
  # fills the list in itself when none is given.
  tags = var.tags
}

# --- Trust: exactly one subject per role ----------------------------------------------------------

data "aws_iam_policy_document" "trust" {
  for_each = local.subjects

  statement {
    sid     = "GitHubActionsOidc"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.subjects

  name                 = "${local.n}-github-${each.key}"
  description          = "GitHub Actions (${each.value}): ${each.key == "deploy" ? "CD of ${local.n}" : "terraform plan of ${local.n} for pull requests"}"
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
  tags                 = var.tags
}

# --- Read: the stack's configuration, no data (plan role and deploy role) ------------------------

data "aws_iam_policy_document" "read" {
  #checkov:skip=CKV_AWS_356:The Resource "*" statement holds Describe/List calls of EC2, ELB, RDS, Batch, Application Auto Scaling, CloudWatch alarms and ECS task definitions that list or filter by ids and have no stack-scoped form; they return configuration, not data.
  statement {
    # Describe calls: no resource-level form (EC2, ELB, Batch, Application Auto Scaling, task
    # definitions), or one the provider does not use (RDS looks instances up by resource id).
    # ec2:Describe* includes DescribeInstanceAttribute (user data) of any instance in the region.
    sid = "DescribeStackServices"
    actions = [
      "application-autoscaling:Describe*",
      "application-autoscaling:ListTagsForResource",
      "batch:Describe*",
      "cloudwatch:DescribeAlarms",
      "ec2:Describe*",
      "ecs:DescribeTaskDefinition",
      "elasticloadbalancing:Describe*",
      "kms:ListAliases",
      "logs:DescribeLogGroups",
      "rds:Describe*",
      "rds:ListTagsForResource",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "ReadStackEcs"
    actions   = ["ecs:DescribeClusters", "ecs:DescribeServices", "ecs:ListTagsForResource"]
    resources = local.stack_ecs
  }
  statement {
    sid       = "ReadStackRepositories"
    actions   = ["ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:GetRepositoryPolicy", "ecr:ListTagsForResource"]
    resources = [local.stack_repositories]
  }
  statement {
    sid = "ReadStackIam"
    actions = [
      "iam:GetInstanceProfile",
      "iam:GetOpenIDConnectProvider",
      "iam:GetPolicy",
      "iam:GetPolicyVersion",
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfileTags",
      "iam:ListInstanceProfilesForRole",
      "iam:ListOpenIDConnectProviderTags",
      "iam:ListPolicyTags",
      "iam:ListPolicyVersions",
      "iam:ListRolePolicies",
      "iam:ListRoleTags",
    ]
    resources = [
      local.stack_roles,
      local.stack_policies,
      local.stack_instance_profiles,
      "${local.iam}:oidc-provider/token.actions.githubusercontent.com",
    ]
  }
  statement {
    sid       = "ReadStackKey"
    actions   = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
    resources = [var.kms_key_arn]
  }
  statement {
    # Bucket configuration; s3:ListBucket is what HeadBucket needs (it lists keys, no object is read).
    sid = "ReadStackBucketConfiguration"
    actions = [
      "s3:GetAccelerateConfiguration",
      "s3:GetBucket*",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:GetReplicationConfiguration",
      "s3:ListBucket",
    ]
    resources = [local.stack_buckets]
  }
  statement {
    # Metadata only: no secretsmanager:GetSecretValue.
    sid       = "DescribeStackSecrets"
    actions   = ["secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:ListSecretVersionIds"]
    resources = [local.stack_secrets, local.rds_managed_secrets]
  }
  statement {
    sid       = "ReadStackLogGroupTags"
    actions   = ["logs:ListTagsForResource", "logs:ListTagsLogGroup"]
    resources = local.stack_log_groups
  }
  statement {
    sid       = "ReadStackBatchTags"
    actions   = ["batch:ListTagsForResource"]
    resources = local.stack_batch
  }
  statement {
    sid       = "ReadStackSchedules"
    actions   = ["scheduler:GetSchedule"]
    resources = [local.stack_schedules]
  }
  dynamic "statement" {
    for_each = var.dns_zone_id == null ? [] : [var.dns_zone_id]
    content {
      sid = "ReadStackRecords"
      actions = [
        "route53:GetChange",
        "route53:GetHostedZone",
        "route53:ListResourceRecordSets",
        "route53:ListTagsForResource",
      ]
      resources = [
        "arn:${local.partition}:route53:::hostedzone/${statement.value}",
        "arn:${local.partition}:route53:::change/*",
      ]
    }
  }
}

# --- State ------------------------------------------------------------------------------------

data "aws_iam_policy_document" "state_read" {
  statement {
    # Unconditioned: `terraform init` lists workspaces (prefix env:/) besides reading the key.
    sid       = "ListStateBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.state_bucket]
  }
  statement {
    sid       = "ReadState"
    actions   = ["s3:GetObject"]
    resources = [local.state_object]
  }
  dynamic "statement" {
    for_each = var.terraform_state_kms_key_arn == null ? [] : [var.terraform_state_kms_key_arn]
    content {
      sid       = "DecryptState"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "state_write" {
  statement {
    # The state and its lock file (backend "s3" with use_lockfile: <key>.tflock beside it).
    sid       = "WriteStateAndLock"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.state_object, "${local.state_object}.tflock"]
  }
  statement {
    sid       = "ReleaseLock"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.state_object}.tflock"]
  }
  dynamic "statement" {
    for_each = var.terraform_state_kms_key_arn == null ? [] : [var.terraform_state_kms_key_arn]
    content {
      sid       = "EncryptState"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }
}

# --- CD: push images, roll out the bento, read the CD secrets ------------------------------------

data "aws_iam_policy_document" "cd" {
  source_policy_documents = [data.aws_iam_policy_document.state_read.json]

  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid = "PushImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeRepositories",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:ListImages",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = var.ecr_repository_arns
  }
  dynamic "statement" {
    for_each = length(var.secret_arns) == 0 ? [] : [var.secret_arns]
    content {
      sid       = "ReadCdSecrets"
      actions   = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }
  statement {
    sid       = "DecryptSecretsWithStackKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
  # The bento rollout, as recops.serving.ecs does it (modules/bento_service's deployer policy).
  statement {
    sid       = "RolloutBento"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [var.bento_service_arn]
  }
  statement {
    sid       = "RegisterBentoRevisions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid       = "TagBentoRevisionsWhenRegistering"
    actions   = ["ecs:TagResource"]
    resources = ["${local.ecs}:task-definition/${var.bento_task_definition_family}:*"]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }
  statement {
    sid       = "PassBentoRoles"
    actions   = ["iam:PassRole"]
    resources = var.bento_task_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# --- terraform apply of the stack ----------------------------------------------------------------
#
# Broad by nature: applying the stack means creating and changing its networks, roles, keys,
# databases and services. Scoped to the services the stack uses and, where the API allows, to
# resources named with the stack's prefix. What could NOT be scoped to this stack:
#   - EC2 networking (VPC, subnets, routes, NAT, addresses, security groups, endpoints, flow logs,
#     launch templates): EC2 ARNs hold ids, not names. Only the region is fixed; the role may
#     change any VPC resource in it. (Tag conditions, recops:stack = <name>, could narrow deletes
#     and changes, but ec2:CreateTags would then need the same care and the VPC's default security
#     group is adopted untagged; not verifiable here without AWS.)
#   - Application Auto Scaling: scalable targets have ids; any target in the account.
#   - ecs:RegisterTaskDefinition / DeregisterTaskDefinition: no resource-level form.
#   - Target groups: named rc-<random> by modules/ecs_http_service, shared with other stacks.
#   - RDS-managed master-password secrets (rds!db-*): named by RDS, any in the account.
#   - The RDS default option group (og:default:*).
#   - IAM: the role may create roles and policies named <name>-*, write their documents and pass
#     them to ECS, Batch, EC2, Scheduler and VPC Flow Logs. Policy and trust documents cannot be
#     constrained by IAM conditions, so a job with this role can in effect obtain any permission
#     in the account (a <name>-* role with a <name>-* policy of its choosing, run as an ECS task).
#     What keeps that in check is who may run such a job: the exact sub claim and the GitHub
#     environment's protection rules (README). A permissions boundary required on every role the
#     stack creates would close it; the stack's roles do not carry one yet.
#   - Reading every secret of the stack (secretsmanager:GetSecretValue on <name>/*): refreshing an
#     aws_secretsmanager_secret_version reads the value back.
# Not granted (an administrator's apply): creating or deleting KMS keys, emptying buckets
# (force_destroy), deleting the state, and changing this module's own roles and policies.

data "aws_iam_policy_document" "apply_foundation" {
  statement {
    sid = "Ec2Networking"
    actions = [
      "ec2:AllocateAddress",
      "ec2:AssociateRouteTable",
      "ec2:AttachInternetGateway",
      "ec2:AuthorizeSecurityGroupEgress",
      "ec2:AuthorizeSecurityGroupIngress",
      "ec2:CreateFlowLogs",
      "ec2:CreateInternetGateway",
      "ec2:CreateLaunchTemplate",
      "ec2:CreateLaunchTemplateVersion",
      "ec2:CreateNatGateway",
      "ec2:CreateRoute",
      "ec2:CreateRouteTable",
      "ec2:CreateSecurityGroup",
      "ec2:CreateSubnet",
      "ec2:CreateTags",
      "ec2:CreateVpc",
      "ec2:CreateVpcEndpoint",
      "ec2:DeleteFlowLogs",
      "ec2:DeleteInternetGateway",
      "ec2:DeleteLaunchTemplate",
      "ec2:DeleteLaunchTemplateVersions",
      "ec2:DeleteNatGateway",
      "ec2:DeleteRoute",
      "ec2:DeleteRouteTable",
      "ec2:DeleteSecurityGroup",
      "ec2:DeleteSubnet",
      "ec2:DeleteTags",
      "ec2:DeleteVpc",
      "ec2:DeleteVpcEndpoints",
      "ec2:DetachInternetGateway",
      "ec2:DisassociateAddress",
      "ec2:DisassociateRouteTable",
      "ec2:ModifyLaunchTemplate",
      "ec2:ModifySecurityGroupRules",
      "ec2:ModifySubnetAttribute",
      "ec2:ModifyVpcAttribute",
      "ec2:ModifyVpcEndpoint",
      "ec2:ReleaseAddress",
      "ec2:ReplaceRoute",
      "ec2:ReplaceRouteTableAssociation",
      "ec2:RevokeSecurityGroupEgress",
      "ec2:RevokeSecurityGroupIngress",
      "ec2:UpdateSecurityGroupRuleDescriptionsEgress",
      "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
    ]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [local.region]
    }
  }
  statement {
    # The stack's key: its policy, rotation, alias and tags; not its deletion.
    sid = "ManageStackKey"
    actions = [
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:EnableKeyRotation",
      "kms:PutKeyPolicy",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = [var.kms_key_arn, "arn:${local.partition}:kms:${local.region}:${local.account_id}:alias/${local.n}"]
  }
  statement {
    # Encrypted resources (RDS storage, ECR, Secrets Manager, logs, schedules) are created with
    # the caller's use of the key, through the service.
    sid       = "UseStackKeyThroughServices"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [for service in ["ecr", "logs", "rds", "s3", "scheduler", "secretsmanager"] :
      "${service}.${local.region}.amazonaws.com"]
    }
  }
  statement {
    sid       = "GrantStackKeyToServices"
    actions   = ["kms:CreateGrant", "kms:ListGrants", "kms:RetireGrant"]
    resources = [var.kms_key_arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    sid = "ManageStackRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
    ]
    resources = [local.stack_roles]
  }
  statement {
    sid       = "AttachStackAndListedPolicies"
    actions   = ["iam:AttachRolePolicy"]
    resources = [local.stack_roles]
    condition {
      test     = "ArnLike"
      variable = "iam:PolicyARN"
      values   = concat([local.stack_policies], var.aws_managed_policy_arns)
    }
  }
  statement {
    sid = "ManageStackPolicies"
    actions = [
      "iam:CreatePolicy",
      "iam:CreatePolicyVersion",
      "iam:DeletePolicy",
      "iam:DeletePolicyVersion",
      "iam:ListEntitiesForPolicy",
      "iam:TagPolicy",
      "iam:UntagPolicy",
    ]
    resources = [local.stack_policies]
  }
  statement {
    sid = "ManageStackInstanceProfiles"
    actions = [
      "iam:AddRoleToInstanceProfile",
      "iam:CreateInstanceProfile",
      "iam:DeleteInstanceProfile",
      "iam:RemoveRoleFromInstanceProfile",
      "iam:TagInstanceProfile",
      "iam:UntagInstanceProfile",
    ]
    resources = [local.stack_instance_profiles]
  }
  statement {
    sid       = "PassStackRolesToTheirServices"
    actions   = ["iam:PassRole"]
    resources = [local.stack_roles]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["batch.amazonaws.com", "ec2.amazonaws.com", "ecs-tasks.amazonaws.com", "scheduler.amazonaws.com", "vpc-flow-logs.amazonaws.com"]
    }
  }
  statement {
    # iam:AddRoleToInstanceProfile and Batch's compute environment check PassRole on the Batch
    # instance role without naming a service to pass it to.
    sid       = "PassBatchInstanceRole"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam}:role/${local.n}-batch-instance-*"]
  }
  statement {
    # Made once per account by the first apply; listed so that a fresh account's first CD apply
    # does not stop on them.
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["${local.iam}:role/aws-service-role/*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values = [
        "batch.amazonaws.com",
        "ecs.amazonaws.com",
        "ecs.application-autoscaling.amazonaws.com",
        "elasticloadbalancing.amazonaws.com",
        "rds.amazonaws.com",
        "spot.amazonaws.com",
      ]
    }
  }
}

data "aws_iam_policy_document" "apply_services" {
  #checkov:skip=CKV_AWS_356:Resource "*" only where no stack-scoped form exists: Application Auto Scaling (scalable targets are ids) and ecs:Register/DeregisterTaskDefinition; every other statement names the stack's resources (list above apply_foundation).
  #checkov:skip=CKV_AWS_111:The same two statements: writes to scalable targets and task definitions cannot be constrained to the stack's names.
  statement {
    sid = "StackBuckets"
    actions = [
      "s3:CreateBucket",
      "s3:DeleteBucket",
      "s3:DeleteBucketPolicy",
      "s3:PutBucketOwnershipControls",
      "s3:PutBucketPolicy",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketTagging",
      "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
    ]
    resources = [local.stack_buckets]
  }
  statement {
    sid = "StackRepositories"
    actions = [
      "ecr:CreateRepository",
      "ecr:DeleteLifecyclePolicy",
      "ecr:DeleteRepository",
      "ecr:PutImageScanningConfiguration",
      "ecr:PutImageTagMutability",
      "ecr:PutLifecyclePolicy",
      "ecr:TagResource",
      "ecr:UntagResource",
    ]
    resources = [local.stack_repositories]
  }
  statement {
    sid = "StackEcs"
    actions = [
      "ecs:CreateCluster",
      "ecs:CreateService",
      "ecs:DeleteCluster",
      "ecs:DeleteService",
      "ecs:PutClusterCapacityProviders",
      "ecs:TagResource",
      "ecs:UntagResource",
      "ecs:UpdateCluster",
      "ecs:UpdateClusterSettings",
      "ecs:UpdateService",
    ]
    resources = local.stack_ecs
  }
  statement {
    sid       = "TaskDefinitions"
    actions   = ["ecs:DeregisterTaskDefinition", "ecs:RegisterTaskDefinition"]
    resources = ["*"]
  }
  statement {
    sid = "StackLoadBalancers"
    actions = [
      "elasticloadbalancing:AddTags",
      "elasticloadbalancing:CreateListener",
      "elasticloadbalancing:CreateLoadBalancer",
      "elasticloadbalancing:CreateTargetGroup",
      "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:DeleteLoadBalancer",
      "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListener",
      "elasticloadbalancing:ModifyListenerAttributes",
      "elasticloadbalancing:ModifyLoadBalancerAttributes",
      "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:SetSecurityGroups",
      "elasticloadbalancing:SetSubnets",
    ]
    resources = local.stack_elb
  }
  statement {
    sid = "StackDatabase"
    actions = [
      "rds:AddTagsToResource",
      "rds:CreateDBInstance",
      "rds:CreateDBParameterGroup",
      "rds:CreateDBSnapshot",
      "rds:CreateDBSubnetGroup",
      "rds:DeleteDBInstance",
      "rds:DeleteDBParameterGroup",
      "rds:DeleteDBSubnetGroup",
      "rds:ModifyDBInstance",
      "rds:ModifyDBParameterGroup",
      "rds:ModifyDBSubnetGroup",
      "rds:RebootDBInstance",
      "rds:RemoveTagsFromResource",
      "rds:ResetDBParameterGroup",
    ]
    resources = local.stack_rds
  }
  statement {
    sid = "StackSecrets"
    actions = [
      "secretsmanager:CreateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:TagResource",
      "secretsmanager:UntagResource",
      "secretsmanager:UpdateSecret",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = [local.stack_secrets]
  }
  statement {
    # The database's master-password secret: RDS creates it on the caller's behalf; Terraform
    # sets its rotation schedule.
    sid = "RdsManagedSecrets"
    actions = [
      "secretsmanager:CancelRotateSecret",
      "secretsmanager:CreateSecret",
      "secretsmanager:DeleteSecret",
      "secretsmanager:RotateSecret",
      "secretsmanager:TagResource",
    ]
    resources = [local.rds_managed_secrets]
  }
  statement {
    sid = "StackLogGroups"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:DeleteRetentionPolicy",
      "logs:DisassociateKmsKey",
      "logs:PutRetentionPolicy",
      "logs:TagLogGroup",
      "logs:TagResource",
      "logs:UntagLogGroup",
      "logs:UntagResource",
    ]
    resources = local.stack_log_groups
  }
  statement {
    sid = "StackBatch"
    actions = [
      "batch:CreateComputeEnvironment",
      "batch:CreateJobQueue",
      "batch:DeleteComputeEnvironment",
      "batch:DeleteJobQueue",
      "batch:TagResource",
      "batch:UntagResource",
      "batch:UpdateComputeEnvironment",
      "batch:UpdateJobQueue",
    ]
    resources = local.stack_batch
  }
  statement {
    sid       = "StackSchedules"
    actions   = ["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:UpdateSchedule"]
    resources = [local.stack_schedules]
  }
  statement {
    sid = "Autoscaling"
    actions = [
      "application-autoscaling:DeleteScalingPolicy",
      "application-autoscaling:DeregisterScalableTarget",
      "application-autoscaling:PutScalingPolicy",
      "application-autoscaling:RegisterScalableTarget",
      "application-autoscaling:TagResource",
      "application-autoscaling:UntagResource",
    ]
    resources = ["*"]
  }
  statement {
    # Target-tracking policies create their alarms with the caller's rights; Application Auto
    # Scaling names them TargetTracking-service/<cluster>/<service>-...
    sid       = "TargetTrackingAlarms"
    actions   = ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm"]
    resources = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:TargetTracking-service/${local.n}/*"]
  }
  dynamic "statement" {
    for_each = var.dns_zone_id == null || length(var.dns_record_names) == 0 ? [] : [var.dns_zone_id]
    content {
      sid       = "StackRecords"
      actions   = ["route53:ChangeResourceRecordSets"]
      resources = ["arn:${local.partition}:route53:::hostedzone/${statement.value}"]
      condition {
        test     = "ForAllValues:StringEquals"
        variable = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
        values   = [for record in var.dns_record_names : lower(trimsuffix(record, "."))]
      }
    }
  }
}

# The deploy role may not change who may deploy, nor borrow another role.
data "aws_iam_policy_document" "guard" {
  statement {
    sid    = "GitHubAccessIsAnAdministratorsChange"
    effect = "Deny"
    actions = [
      "iam:AttachRolePolicy",
      "iam:CreatePolicy",
      "iam:CreatePolicyVersion",
      "iam:CreateRole",
      "iam:DeletePolicy",
      "iam:DeletePolicyVersion",
      "iam:DeleteRole",
      "iam:DeleteRolePermissionsBoundary",
      "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PutRolePermissionsBoundary",
      "iam:PutRolePolicy",
      "iam:SetDefaultPolicyVersion",
      "iam:TagPolicy",
      "iam:TagRole",
      "iam:UntagPolicy",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
      "iam:UpdateRoleDescription",
    ]
    resources = local.github_access
  }
  statement {
    sid       = "NoRoleChaining"
    effect    = "Deny"
    actions   = ["sts:AssumeRole"]
    resources = ["*"]
  }
}

# --- Policies and attachments ---------------------------------------------------------------------

# Managed policies (an inline policy of a role holds 10,240 characters in all, a managed one 6,144).
locals {
  policies = merge(
    {
      read   = { description = "Read the configuration of ${local.n}, no data (GitHub plan and deploy roles)", json = data.aws_iam_policy_document.read.json }
      deploy = { description = "CD of ${local.n} from GitHub Actions: push images, roll out the bento, read the CD secrets and the state", json = data.aws_iam_policy_document.deploy.json }
    },
    var.allow_terraform_apply ? {
      apply-foundation = { description = "terraform apply of ${local.n}: networking, the stack key, IAM (README: what is not scoped)", json = data.aws_iam_policy_document.apply_foundation.json }
      apply-services   = { description = "terraform apply of ${local.n}: buckets, repositories, ECS, load balancers, database, secrets, logs, Batch, schedules, autoscaling, DNS", json = data.aws_iam_policy_document.apply_services.json }
    } : {},
  )
  attachments = merge(
    { for policy in keys(local.policies) : "deploy/${policy}" => { role = "deploy", policy = policy } },
    { "plan/read" = { role = "plan", policy = "read" } },
  )
}

data "aws_iam_policy_document" "deploy" {
  source_policy_documents = concat(
    [data.aws_iam_policy_document.cd.json],
    var.allow_terraform_apply ? [data.aws_iam_policy_document.state_write.json, data.aws_iam_policy_document.guard.json] : [],
  )
}

resource "aws_iam_policy" "this" {
  for_each = local.policies

  name        = "${local.n}-github-${each.key}"
  description = each.value.description
  policy      = each.value.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = local.attachments

  role       = aws_iam_role.this[each.value.role].name
  policy_arn = aws_iam_policy.this[each.value.policy].arn
}

# The plan role reads the state and takes no lock (`terraform plan -lock=false`).
resource "aws_iam_role_policy" "plan_state" {
  name   = "read-state"
  role   = aws_iam_role.this["plan"].id
  policy = data.aws_iam_policy_document.state_read.json
}
