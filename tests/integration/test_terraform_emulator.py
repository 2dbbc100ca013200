"""Emulator-level test of infra/terraform: apply and destroy the real modules against moto.

Real AWS is out of reach here, so the modules that a local AWS emulator can create are applied
to moto's server on 127.0.0.1 (the root in infra/terraform/tests/emulator: network, metaflow,
prefect_worker and the bento image repository), read back with boto3 to check the settings that
matter (bucket encryption and TLS-only policy, immutable scanned images, the GPU compute
environment, least-privilege roles), then destroyed. The provider comes from the local mirror
(infra/tf-mirror.sh), so nothing is downloaded. `make infra-check` covers what the emulator
cannot: validate, an offline plan of every environment, and checkov.

Most of the run is the provider's own fixed waits (30 s after creating, disabling and deleting a
Batch job queue; about 50 s of S3 lifecycle consistency polling), not the emulator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from recops.localproc import free_port
from tests.helpers import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "infra" / "terraform"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def local_mirror() -> str | None:
    """The provider mirror folder that infra/tf-mirror.sh finds (RECOPS_TF_MIRROR first), or None."""
    found = subprocess.run(
        ["bash", str(REPO / "infra" / "tf-mirror.sh")], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


@dataclass
class Emulator:
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS)


@dataclass
class Stack:
    """The emulator root, copied to a temporary folder so that state never lands in the repo."""

    root: Path
    env: dict[str, str]
    endpoint: str
    outputs: dict[str, Any]

    def terraform(self, *args: str, timeout: float = 300) -> str:
        run = subprocess.run(
            ["terraform", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert run.returncode == 0, f"terraform {args[0]} failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        return run.stdout


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    require_tool(
        shutil.which("terraform") is not None,
        "terraform is not on PATH: the emulator test applies the modules with it",
    )
    require_tool(
        local_mirror() is not None,
        "no local hashicorp/aws provider mirror (set RECOPS_TF_MIRROR): init would need the network",
    )
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # AmazonEC2ContainerServiceforEC2Role
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # returns once it listens
        try:
            yield Emulator(f"http://127.0.0.1:{port}")
        finally:
            server.stop()


@pytest.fixture(scope="module")
def stack(emulator, tmp_path_factory) -> Stack:
    work = tmp_path_factory.mktemp("terraform")
    shutil.copytree(
        TERRAFORM_DIR, work / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
    )
    cli_config = work / "terraformrc"
    cli_config.write_text(
        "provider_installation {\n  filesystem_mirror {\n"
        f'    path    = "{local_mirror()}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n  }\n}\n'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))},
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_DATA_DIR": str(work / "terraform-data"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_VAR_endpoint": emulator.endpoint,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    stack = Stack(work / "terraform" / "tests" / "emulator", env, emulator.endpoint, {})
    stack.terraform("init", "-input=false", "-no-color", timeout=120)
    stack.terraform("apply", "-auto-approve", "-input=false", "-no-color")
    stack.outputs = {k: v["value"] for k, v in json.loads(stack.terraform("output", "-json")).items()}
    return stack


def test_datastore_bucket_is_versioned_encrypted_private_and_tls_only(stack, emulator):
    s3, bucket = emulator.client("s3"), stack.outputs["datastore_bucket"]

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == stack.outputs["kms_key_arn"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(
        block[k]
        for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    (ownership,) = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (lifecycle,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_image_repositories_scan_on_push_with_immutable_tags(stack, emulator):
    ecr = emulator.client("ecr")
    names = [url.split("/", 1)[1] for url in stack.outputs["repositories"].values()]

    repositories = ecr.describe_repositories(repositoryNames=names)["repositories"]
    assert len(repositories) == 2
    for repo in repositories:
        assert repo["imageTagMutability"] == "IMMUTABLE", repo["repositoryName"]
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True, repo["repositoryName"]
        assert repo["encryptionConfiguration"]["encryptionType"] == "KMS", repo["repositoryName"]
        rules = json.loads(
            ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])["lifecyclePolicyText"]
        )
        assert rules["rules"][0]["action"] == {"type": "expire"}


def test_gpu_environment_scales_to_zero_on_the_nvidia_ami(stack, emulator):
    batch = emulator.client("batch")
    arns = stack.outputs["compute_environment_arns"]

    described = batch.describe_compute_environments(computeEnvironments=list(arns.values()))
    by_arn = {ce["computeEnvironmentArn"]: ce for ce in described["computeEnvironments"]}
    gpu, cpu = by_arn[arns["gpu"]]["computeResources"], by_arn[arns["cpu"]]["computeResources"]
    assert gpu["minvCpus"] == 0 and cpu["minvCpus"] == 0
    assert set(gpu["instanceTypes"]) == {"g5", "g6"}
    assert [c["imageType"] for c in gpu["ec2Configuration"]] == ["ECS_AL2_NVIDIA"]
    assert gpu["instanceRole"].split("/")[-1].startswith("recops-emu-batch-instance-")
    assert gpu["launchTemplate"]["launchTemplateId"]

    queues = batch.describe_job_queues(jobQueues=list(stack.outputs["job_queue_names"].values()))["jobQueues"]
    order = {
        q["jobQueueName"]: [c["computeEnvironment"] for c in q["computeEnvironmentOrder"]] for q in queues
    }
    assert order == {"recops-emu-gpu": [arns["gpu"]], "recops-emu-cpu": [arns["cpu"]]}


def test_roles_hold_only_what_their_holder_needs(stack, emulator):
    iam = emulator.client("iam")
    instance_role = stack.outputs["instance_role_name"]
    attached = iam.list_attached_role_policies(RoleName=instance_role)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonEC2ContainerServiceforEC2Role"]

    job_role = stack.outputs["job_role_arn"].split("/")[-1]
    trust = iam.get_role(RoleName=job_role)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    (name,) = iam.list_role_policies(RoleName=job_role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=job_role, PolicyName=name)["PolicyDocument"]
    statements = document["Statement"] if isinstance(document, dict) else json.loads(document)["Statement"]
    bucket_arn = f"arn:aws:s3:::{stack.outputs['datastore_bucket']}"
    resources = {
        r for s in statements for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {bucket_arn, f"{bucket_arn}/*", stack.outputs["kms_key_arn"]}
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.endswith("*") for a in actions), actions


def test_metaflow_profile_points_at_the_created_stack(stack):
    profile = json.loads(stack.outputs["metaflow_profile_json"])

    bucket = stack.outputs["datastore_bucket"]
    assert profile["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert profile["METAFLOW_DATASTORE_SYSROOT_S3"] == f"s3://{bucket}/metaflow"
    assert profile["METAFLOW_DATATOOLS_S3ROOT"] == f"s3://{bucket}/data"
    assert profile["METAFLOW_BATCH_JOB_QUEUE"].endswith(":job-queue/recops-emu-gpu")
    assert profile["METAFLOW_ECS_S3_ACCESS_IAM_ROLE"] == stack.outputs["job_role_arn"]
    assert profile["METAFLOW_BATCH_CONTAINER_IMAGE"] == "recops-emu/train:emulator"


def test_prefect_worker_runs_with_its_api_settings_from_secrets(stack, emulator):
    prefect = stack.outputs["prefect"]
    ecs = emulator.client("ecs")
    (service,) = ecs.describe_services(cluster=prefect["cluster"], services=[prefect["service"]])["services"]
    assert service["desiredCount"] == 1
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"

    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["command"][:3] == ["prefect", "worker", "start"]
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets == {
        "PREFECT_API_URL": prefect["api_url_secret_arn"],
        "PREFECT_API_KEY": prefect["api_key_secret_arn"],
    }
    assert sorted(prefect["job_variables"]["network_configuration"]["subnets"]) == sorted(network["subnets"])
    names = {s["Name"] for s in emulator.client("secretsmanager").list_secrets()["SecretList"]}
    assert any(n.startswith("recops-emu/prefect/api-key-") for n in names)


def test_network_keeps_s3_off_the_nat_gateway(stack, emulator):
    ec2 = emulator.client("ec2")
    (endpoint,) = ec2.describe_vpc_endpoints(VpcEndpointIds=[stack.outputs["s3_endpoint_id"]])["VpcEndpoints"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert endpoint["ServiceName"] == f"com.amazonaws.{REGION}.s3"
    assert len(endpoint["RouteTableIds"]) == 2  # one private route table per zone
    vpc_filter = [{"Name": "vpc-id", "Values": [stack.outputs["vpc_id"]]}]
    (nat,) = ec2.describe_nat_gateways(Filters=vpc_filter)["NatGateways"]
    assert nat["State"] == "available"


def test_destroy_leaves_nothing_behind(stack, emulator):
    """Runs last (pytest keeps file order): the checks above read the applied stack."""
    stack.terraform("destroy", "-auto-approve", "-input=false", "-no-color")

    assert json.loads(stack.terraform("show", "-json")).get("values") is None
    with pytest.raises(ClientError, match=r"404|NoSuchBucket|Not Found"):
        emulator.client("s3").head_bucket(Bucket=stack.outputs["datastore_bucket"])
    assert emulator.client("ecr").describe_repositories()["repositories"] == []
    roles = emulator.client("iam").list_roles()["Roles"]
    assert [r["RoleName"] for r in roles if r["RoleName"].startswith("recops-emu")] == []
    queues = emulator.client("batch").describe_job_queues()["jobQueues"]
    assert [q["jobQueueName"] for q in queues if q["status"] != "DELETED"] == []
    assert (
        emulator.client("ec2").describe_vpcs(
            Filters=[{"Name": "vpc-id", "Values": [stack.outputs["vpc_id"]]}]
        )["Vpcs"]
        == []
    )
