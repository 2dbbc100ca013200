# A VPC whose private subnets reach AWS APIs through NAT (ECS, ECR, Batch, Secrets Manager, CloudWatch)
# and S3 through a free gateway endpoint. Nothing runs in the public subnets but the NAT gateways
# and internet-facing load balancers, when a service asks for one.

data "aws_region" "current" {}

locals {
  zones         = length(var.availability_zones)
  nat_count     = var.single_nat_gateway ? 1 : local.zones
  private_cidrs = [for i in range(local.zones) : cidrsubnet(var.cidr_block, 4, i)]
  public_cidrs  = [for i in range(local.zones) : cidrsubnet(var.cidr_block, 8, 240 + i)]
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints and RDS endpoints resolve through private DNS
  tags                 = merge(var.tags, { Name = var.name })
}

# The default security group is left with no rules, so nothing lands in it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-closed" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count                   = local.zones
  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.public_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name}-public-${var.availability_zones[count.index]}", Tier = "public" })
}

resource "aws_subnet" "private" {
  count             = local.zones
  vpc_id            = aws_vpc.this.id
  cidr_block        = local.private_cidrs[count.index]
  availability_zone = var.availability_zones[count.index]
  tags              = merge(var.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}", Tier = "private" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = local.zones
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name}-nat-${count.index}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(var.tags, { Name = "${var.name}-nat-${count.index}" })
}

# One route table per private subnet, so that each can point at its own zone's NAT gateway.
resource "aws_route_table" "private" {
  count  = local.zones
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}" })
}

# Without this egress a Batch instance cannot register with ECS or pull from ECR, and jobs sit in
# RUNNABLE forever.
resource "aws_route" "private_nat" {
  count                  = local.zones
  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
}

resource "aws_route_table_association" "private" {
  count          = local.zones
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# S3 traffic (Metaflow datastore, MLflow artifacts, ECR image layers) bypasses the NAT gateway:
# the gateway endpoint is free, NAT data processing is not.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = merge(var.tags, { Name = "${var.name}-s3" })
}

# One security group per kind of workload that only calls out (Batch instances, the Prefect
# worker, its flow runs), with the same egress: a service admits a kind by naming its group (the
# MLflow load balancer admits all three), never the whole VPC range.
resource "aws_security_group" "workload" {
  #checkov:skip=CKV2_AWS_5:Attached outside this module: the Batch compute environments, the Prefect worker and its flow runs take them through workload_security_group_ids.
  for_each = toset(var.workloads)

  name_prefix = "${var.name}-${each.key}-"
  description = "${each.key}: outbound connections only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-${each.key}" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "workload_https" {
  for_each = aws_security_group.workload

  security_group_id = each.value.id
  description       = "HTTPS to AWS APIs (ECS, ECR, Batch, S3, Secrets Manager), the Prefect API and package indexes"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "workload_in_vpc" {
  for_each = aws_security_group.workload

  security_group_id = each.value.id
  description       = "TCP to services inside the VPC (the MLflow and bento load balancers admit by security group)"
  ip_protocol       = "tcp"
  from_port         = 0
  to_port           = 65535
  cidr_ipv4         = aws_vpc.this.cidr_block
}

# Flow logs keep rejected connections only: enough to debug a security group, cheap at idle.
resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_logs_write" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

module "flow_logs_role" {
  source      = "../iam_role"
  name_prefix = "${var.name}-flow-logs-"
  service     = "vpc-flow-logs.amazonaws.com"
  policy_name = "write-flow-logs"
  policy_json = data.aws_iam_policy_document.flow_logs_write.json
  tags        = var.tags
}

resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "REJECT"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn         = module.flow_logs_role.arn
  tags                 = var.tags
}

# Stacks applied before the per-workload groups had one shared group, attached to all three; it
# becomes the Batch group, so the compute environments keep theirs.
moved {
  from = aws_security_group.workloads
  to   = aws_security_group.workload["batch"]
}

moved {
  from = aws_vpc_security_group_egress_rule.workloads_https
  to   = aws_vpc_security_group_egress_rule.workload_https["batch"]
}

moved {
  from = aws_vpc_security_group_egress_rule.workloads_in_vpc
  to   = aws_vpc_security_group_egress_rule.workload_in_vpc["batch"]
}
