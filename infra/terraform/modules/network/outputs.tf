output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 range of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone: Batch instances, ECS tasks, RDS, internal load balancers."
  value       = aws_subnet.private[*].id
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone: NAT gateways and internet-facing load balancers."
  value       = aws_subnet.public[*].id
}

output "workloads_security_group_id" {
  description = "Security group for compute that only calls out (HTTPS anywhere, TCP inside the VPC)."
  value       = aws_security_group.workloads.id
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint on the private route tables."
  value       = aws_vpc_endpoint.s3.id
}

output "nat_public_ips" {
  description = "Public addresses that private-subnet traffic leaves from (for allow-lists elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
