# The store of the continuous-training cycle (RECOPS_STORE = s3://<bucket>/<prefix>): incoming
# events, the consumed-files manifest, quarantine, snapshots, deployment and failure records.
# Its own bucket rather than a prefix of the Metaflow datastore: every Batch job may write the
# whole datastore, while the manifest and the deployment records decide what the next cycle
# trains and serves, so only the cycle's flow runs write here and Batch jobs only read (the
# snapshot they train on). Its retention is its own too: incoming events are source data.

module "bucket" {
  source = "../s3_bucket"

  name_prefix             = "${var.name}-store-"
  kms_key_arn             = var.kms_key_arn
  noncurrent_version_days = var.noncurrent_version_days
  force_destroy           = var.force_destroy
  tags                    = var.tags
}

locals {
  objects = "${module.bucket.arn}/${var.prefix}/*"
}

# Listing covers the whole bucket: it holds the store alone.
data "aws_iam_policy_document" "read_write" {
  statement {
    sid       = "ListStore"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [module.bucket.arn]
  }
  statement {
    # Delete: quarantine moves files, gc prunes snapshots; abort: s3fs's multipart uploads.
    sid       = "ReadWriteStore"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.objects]
  }
  statement {
    sid       = "UseStoreKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "read_only" {
  statement {
    sid       = "ListStore"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [module.bucket.arn]
  }
  statement {
    sid       = "ReadStore"
    actions   = ["s3:GetObject"]
    resources = [local.objects]
  }
  statement {
    sid       = "DecryptStore"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

# The bento service: it appends its served-list log (new objects under served/, never an
# overwrite of another's: every key holds a time, a pid and a random part) and reads the
# trending lists a cycle publishes. Nothing else of the store: not the manifest, not incoming.
data "aws_iam_policy_document" "serving" {
  statement {
    sid       = "WriteServedLog"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${module.bucket.arn}/${var.prefix}/served/*"]
  }
  statement {
    sid       = "ReadTrending"
    actions   = ["s3:GetObject"]
    resources = ["${module.bucket.arn}/${var.prefix}/serving/trending.json"]
  }
  statement {
    sid       = "UseStoreKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "read_write" {
  name_prefix = "${var.name}-store-rw-"
  description = "Read and write the recops store s3://${module.bucket.id}/${var.prefix}"
  policy      = data.aws_iam_policy_document.read_write.json
  tags        = var.tags
}
