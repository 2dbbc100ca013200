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

output "workload_security_group_ids" {
  description = "Security group per kind of workload (var.workloads), each for compute that only calls out (HTTPS anywhere, TCP inside the VPC): attach it to the workload, and name it where a service admits its clients."
  value       = { for kind, group in aws_security_group.workload : kind => group.id }
}

output "s3_endpoint_id" {
  description = "ID of the S3 gateway endpoint on the private route tables."
  value       = aws_vpc_endpoint.s3.id
}

output "nat_public_ips" {
  description = "Public addresses that private-subnet traffic leaves from (for allow-lists elsewhere)."
  value       = aws_eip.nat[*].public_ip
}
