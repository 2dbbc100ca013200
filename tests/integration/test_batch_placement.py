"""Where TrainRecommenderFlow's steps run on AWS Batch, read from Metaflow's own compiler.

No Batch job can run here, but ``step-functions create --only-json`` compiles the flow into the
state machine that would submit them: each step's job queue and resource requirements, with
the code package uploaded to the S3 datastore. Against the AWS emulator (moto's server, S3,
Batch queues and IAM), with the variables Terraform's ``client_environment`` gives a flow run,
it shows the train step on the GPU queue with its GPU, and every other step on the CPU queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.emulator import emulator

pytestmark = pytest.mark.integration  # about 5 s: the compile is quick against the emulator

FLOW = "flows/train_recommender.py"
ROLE = "arn:aws:iam::123456789012:role/recops-batch"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/recops-training:1"
COMPILE = ["step-functions", "create", "--only-json"]
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:recops-mlflow-client-AbCdEf"


def remote_options_in(env: dict[str, str]) -> dict:
    """What the cycle's Runner adds in ``env`` (Metaflow reads its configuration once per
    process, so a fresh one is asked)."""
    code = "import json; from recops.pipeline import batch; print(json.dumps(batch.remote_options()))"
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(found.stdout)


def batch_queues(emu) -> None:
    """The CPU and GPU job queues infra/terraform's metaflow module creates, in the emulator."""
    ec2, iam, batch = emu.client("ec2"), emu.client("iam"), emu.client("batch")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    service_role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="batch-instance")["InstanceProfile"]["Arn"]
    for queue, instance in (("recops-cpu", "c6i.large"), ("recops-gpu", "g5.xlarge")):
        environment = batch.create_compute_environment(
            computeEnvironmentName=f"{queue}-ce",
            type="MANAGED",
            state="ENABLED",
            serviceRole=service_role,
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": 8,
                "instanceTypes": [instance],
                "subnets": [subnet],
                "securityGroupIds": [group],
                "instanceRole": profile,
            },
        )["computeEnvironmentArn"]
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )


def test_train_step_goes_to_the_gpu_queue_and_the_rest_to_the_cpu_queue():
    with emulator() as emu:
        emu.bucket("recops-metaflow")
        batch_queues(emu)
        env = {
            **os.environ,
            **emu.env(),
            "METAFLOW_DEFAULT_DATASTORE": "s3",
            "METAFLOW_DATASTORE_SYSROOT_S3": "s3://recops-metaflow/metaflow",
            "METAFLOW_BATCH_JOB_QUEUE": "recops-cpu",
            "RECOPS_BATCH_GPU_QUEUE": "recops-gpu",
            "METAFLOW_BATCH_CONTAINER_IMAGE": IMAGE,
            "METAFLOW_ECS_S3_ACCESS_IAM_ROLE": ROLE,
            "METAFLOW_SFN_IAM_ROLE": ROLE,
            "METAFLOW_SFN_DYNAMO_DB_TABLE": "recops-sfn",
            "MLFLOW_TRACKING_URI": "https://mlflow.internal.example",
            "RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN": SECRET,
        }
        launch = [f"--with={spec}" for spec in remote_options_in(env)["decospecs"]]  # as the cycle
        compiled = subprocess.run(
            [sys.executable, FLOW, "--no-pylint", *launch, *COMPILE],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    states = json.loads(compiled.stdout)["States"]
    queues = {name: state["Parameters"]["JobQueue"] for name, state in states.items()}
    assert queues.pop("train") == "recops-gpu"
    assert set(queues.values()) == {"recops-cpu"}, queues
    assert set(queues) == {"start", "validate", "split", "evaluate", "report", "register", "end"}

    def requirements(step: str) -> dict[str, str]:
        found = states[step]["Parameters"]["ContainerOverrides"]["ResourceRequirements"]
        return {r["Type"]: r["Value"] for r in found}

    assert requirements("train") == {"GPU": "1", "VCPU": "2", "MEMORY": "8000"}  # configs/default.toml
    assert "GPU" not in requirements("split")

    # every job gets the tracking URI, and the credentials' secret to fetch (never the values)
    for name in ("train", "register"):
        overrides = states[name]["Parameters"]["ContainerOverrides"]["Environment"]
        job_env = {e["Name"]: e.get("Value") for e in overrides}
        assert job_env.get("MLFLOW_TRACKING_URI") == "https://mlflow.internal.example", sorted(job_env)
    assert SECRET in compiled.stdout
    assert "MLFLOW_TRACKING_PASSWORD" not in compiled.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {}),
        ({"METAFLOW_DEFAULT_DATASTORE": "s3"}, {}),  # an S3 datastore alone: still local compute
        (
            {"METAFLOW_DEFAULT_DATASTORE": "s3", "METAFLOW_BATCH_JOB_QUEUE": "recops-cpu"},
            {"decospecs": ["batch"]},
        ),
    ],
)
def test_the_cycle_launches_on_batch_only_when_metaflow_is_configured_for_it(env, expected, tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "MLFLOW_", "RECOPS_"))}
    # METAFLOW_HOME: no profile from ~/.metaflowconfig
    assert remote_options_in({**clean, **env, "METAFLOW_HOME": str(tmp_path)}) == expected
