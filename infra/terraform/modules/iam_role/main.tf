# One IAM role that an AWS service assumes, with its inline policy and managed policies.
# Every role of the stack has this shape; the outputs resolve only once the policies are
# attached, so whatever uses the role (a task definition, a Batch compute environment) is
# created after it can do its work.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [var.service]
    }
  }
}

resource "aws_iam_role" "this" {
  name_prefix        = var.name_prefix
  description        = var.description
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  count  = var.policy_name == null ? 0 : 1
  name   = var.policy_name
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

resource "aws_iam_role_policy_attachment" "this" {
  count      = length(var.managed_policy_arns)
  role       = aws_iam_role.this.name
  policy_arn = var.managed_policy_arns[count.index]
}
