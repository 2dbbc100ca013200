"""Emulator-level test of infra/terraform: apply and destroy the real modules against moto.

Real AWS is out of reach here, so the modules that a local AWS emulator can create are applied
to moto's server on 127.0.0.1 (the root in infra/terraform/tests/emulator: network, the recops
store, metaflow, prefect_worker, the bento image repository and the generated secrets of the
mlflow and bento_service modules), read back with boto3 to check the settings that matter
(bucket encryption and TLS-only policy, immutable scanned images, the GPU compute environment,
least-privilege roles, one security group per workload, secrets generated outside the state,
what a flow run is given), then destroyed. The provider comes from the local mirror
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
import urllib.request
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
        endpoint = f"http://127.0.0.1:{port}"
        # moto's backends are per process: one that another test in this worker created without
        # the managed policies stays without them; a reset rebuilds them all with the setting on
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10)
        try:
            yield Emulator(endpoint)
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


def statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a policy document as IAM returns it (a dict, or JSON text)."""
    document = json.loads(document) if isinstance(document, str) else document
    return document["Statement"]


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def inline_statements(iam: Any, role_name: str) -> list[dict[str, Any]]:
    (name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    return statements(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])


@pytest.mark.parametrize("bucket_output", ["datastore_bucket", "store_bucket"])
def test_buckets_are_versioned_encrypted_private_and_tls_only(stack, emulator, bucket_output):
    s3 = emulator.client("s3")
    buckets = {
        "datastore_bucket": stack.outputs["datastore_bucket"],
        "store_bucket": stack.outputs["store"]["bucket"],
    }
    bucket = buckets[bucket_output]

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
    assert len(repositories) == 3
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
    granted = inline_statements(iam, job_role)
    bucket_arn = f"arn:aws:s3:::{stack.outputs['datastore_bucket']}"
    store = stack.outputs["store"]
    store_arn = f"arn:aws:s3:::{store['bucket']}"
    resources = {r for s in granted for r in listed(s["Resource"])}
    assert resources == {
        bucket_arn,
        f"{bucket_arn}/*",
        stack.outputs["kms_key_arn"],
        store_arn,
        f"{store_arn}/recops/*",  # the store: read only, under its prefix
        stack.outputs["secrets"]["mlflow_credentials_arn"],  # for Metaflow's @secrets
    }
    actions = {a for s in granted for a in listed(s["Action"])}
    assert not any(a.endswith("*") for a in actions), actions
    store_actions = {
        a for s in granted if f"{store_arn}/recops/*" in listed(s["Resource"]) for a in listed(s["Action"])
    }
    assert store_actions == {"s3:GetObject"}


def test_flow_runs_may_write_the_store_under_its_prefix_only(stack, emulator):
    iam = emulator.client("iam")
    store = stack.outputs["store"]
    assert store["uri"] == f"s3://{store['bucket']}/recops"

    flow_run_role = stack.outputs["prefect"]["flow_run_role_arn"].split("/")[-1]
    attached = {
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=flow_run_role)["AttachedPolicies"]
    }
    assert store["read_write_policy_arn"] in attached
    policy = iam.get_policy(PolicyArn=store["read_write_policy_arn"])["Policy"]
    document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    writes = [
        s for s in statements(document["PolicyVersion"]["Document"]) if "s3:PutObject" in listed(s["Action"])
    ]
    assert [listed(s["Resource"]) for s in writes] == [[f"arn:aws:s3:::{store['bucket']}/recops/*"]]


def test_generated_secrets_are_in_secrets_manager_and_never_in_the_state(stack, emulator):
    manager = emulator.client("secretsmanager")
    secrets = stack.outputs["secrets"]

    credentials = manager.get_secret_value(SecretId=secrets["mlflow_credentials_arn"])["SecretString"]
    fields = json.loads(credentials)
    assert fields["MLFLOW_TRACKING_USERNAME"] == "recops"
    assert len(fields["MLFLOW_TRACKING_PASSWORD"]) == 64 and int(fields["MLFLOW_TRACKING_PASSWORD"], 16) >= 0
    assert secrets["mlflow_credentials_value_from"] == {
        key: f"{secrets['mlflow_credentials_arn']}:{key}::"
        for key in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")
    }
    token = manager.get_secret_value(SecretId=secrets["bento_api_token_arn"])["SecretString"]
    assert len(token) == 64 and token != fields["MLFLOW_TRACKING_PASSWORD"]
    for arn in (secrets["mlflow_credentials_arn"], secrets["bento_api_token_arn"]):
        assert manager.describe_secret(SecretId=arn)["KmsKeyId"] == stack.outputs["kms_key_arn"]

    # Written through the write-only secret_string_wo: neither value is in Terraform's state.
    state = stack.terraform("show", "-json")
    assert fields["MLFLOW_TRACKING_PASSWORD"] not in state and token not in state


def test_each_workload_has_its_own_security_group(stack, emulator):
    groups = stack.outputs["workload_security_group_ids"]
    assert set(groups) == {"batch", "prefect-worker", "flow-runs"} and len(set(groups.values())) == 3

    ec2 = emulator.client("ec2")
    for group in ec2.describe_security_groups(GroupIds=list(groups.values()))["SecurityGroups"]:
        assert group["IpPermissions"] == [], group["GroupName"]  # outbound only
        egress = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")) for p in group["IpPermissionsEgress"]}
        assert egress == {("tcp", 443, 443), ("tcp", 0, 65535)}, group["GroupName"]

    batch = emulator.client("batch")
    ce = stack.outputs["compute_environment_arns"]["gpu"]
    (described,) = batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]
    assert described["computeResources"]["securityGroupIds"] == [groups["batch"]]


def test_metaflow_profile_points_at_the_created_stack(stack):
    profile = json.loads(stack.outputs["metaflow_profile_json"])

    bucket = stack.outputs["datastore_bucket"]
    assert profile["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    assert profile["METAFLOW_DATASTORE_SYSROOT_S3"] == f"s3://{bucket}/metaflow"
    assert profile["METAFLOW_DATATOOLS_S3ROOT"] == f"s3://{bucket}/data"
    assert profile["METAFLOW_BATCH_JOB_QUEUE"].endswith(":job-queue/recops-emu-cpu")  # GPU: named per step
    assert profile["METAFLOW_ECS_S3_ACCESS_IAM_ROLE"] == stack.outputs["job_role_arn"]
    assert profile["METAFLOW_BATCH_CONTAINER_IMAGE"] == "recops-emu/train:emulator"
    assert profile["METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE"] == "aws-secrets-manager"


def test_prefect_worker_runs_its_pinned_image_with_its_api_settings_from_secrets(stack, emulator):
    prefect = stack.outputs["prefect"]
    groups = stack.outputs["workload_security_group_ids"]
    ecs = emulator.client("ecs")
    (service,) = ecs.describe_services(cluster=prefect["cluster"], services=[prefect["service"]])["services"]
    assert service["desiredCount"] == 1
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    assert network["securityGroups"] == [groups["prefect-worker"]]

    task = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["command"][:3] == ["prefect", "worker", "start"]
    assert container["image"] == f"{stack.outputs['repositories']['prefect_worker']}:emulator"
    assert "EXTRA_PIP_PACKAGES" not in {
        e["name"] for e in container["environment"]
    }  # nothing installed at start
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets == {
        "PREFECT_API_URL": prefect["api_url_secret_arn"],
        "PREFECT_API_KEY": prefect["api_key_secret_arn"],
    }
    assert sorted(prefect["job_variables"]["network_configuration"]["subnets"]) == sorted(network["subnets"])
    assert prefect["job_variables"]["network_configuration"]["securityGroups"] == [groups["flow-runs"]]
    names = {s["Name"] for s in emulator.client("secretsmanager").list_secrets()["SecretList"]}
    assert any(n.startswith("recops-emu/prefect/api-key-") for n in names)


def test_flow_runs_get_settings_as_environment_and_credentials_as_ecs_secrets(stack, emulator):
    prefect = stack.outputs["prefect"]
    template = prefect["base_job_template"]
    (container,) = template["job_configuration"]["task_definition"]["containerDefinitions"]
    assert container["image"] == "{{ image }}"  # still the deployment's
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment == {"RECOPS_STORE": stack.outputs["store"]["uri"], "RECOPS_DEPLOY_BACKEND": "ecs"}
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets == stack.outputs["secrets"]["mlflow_credentials_value_from"]

    defaults = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    for name, value in prefect["job_variables"].items():
        assert defaults[name] == value, name
    assert (defaults["cpu"], defaults["memory"]) == (1024, 4096)

    # The flow-run execution role reads those secrets (ECS injects them), nothing else's.
    iam = emulator.client("iam")
    role = defaults["execution_role_arn"].split("/")[-1]
    reads = [
        s for s in inline_statements(iam, role) if "secretsmanager:GetSecretValue" in listed(s["Action"])
    ]
    assert {r for s in reads for r in listed(s["Resource"])} == {
        prefect["api_key_secret_arn"],
        stack.outputs["secrets"]["mlflow_credentials_arn"],
    }


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
    with pytest.raises(ClientError, match=r"404|NoSuchBucket|Not Found"):
        emulator.client("s3").head_bucket(Bucket=stack.outputs["store"]["bucket"])
    assert emulator.client("ecr").describe_repositories()["repositories"] == []
    generated = {
        stack.outputs["secrets"]["mlflow_credentials_arn"],
        stack.outputs["secrets"]["bento_api_token_arn"],
    }
    left = {s["ARN"] for s in emulator.client("secretsmanager").list_secrets()["SecretList"]}
    assert not generated & left
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
