"""moto's AWS emulator as a real HTTP server on 127.0.0.1, for tests that talk to S3, ECR, ECS,
Secrets Manager and IAM the way production code does: through boto3, s3fs, Metaflow and MLflow
pointed at its endpoint. Named an emulator everywhere it is used; nothing here is a mock of
recops code.

``emulator()`` starts one (moto's ThreadedMotoServer, in this process), ``Emulator.env()`` is
the environment a child process needs to reach it (every client library reads
``AWS_ENDPOINT_URL``; Metaflow and MLflow have their own variables, set too).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from recops.localproc import free_port

REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "testing", "testing"


@dataclass(frozen=True)
class Emulator:
    endpoint: str  # http://127.0.0.1:PORT

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def env(self) -> dict[str, str]:
        """What a process needs to use the emulator as its AWS (credentials are moto's dummies)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "METAFLOW_S3_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent); return ``s3://name``."""
        s3 = self.client("s3")
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if name not in existing:
            s3.create_bucket(Bucket=name)
        return f"s3://{name}"


@contextmanager
def emulator() -> Iterator[Emulator]:
    """A fresh moto server on a free port of 127.0.0.1, stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its state in module globals, shared by every server in this process: start empty
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    try:
        yield Emulator(endpoint)
    finally:
        server.stop()


@dataclass(frozen=True)
class EcsService:
    """A bento ECS service in the emulator, as infra/terraform's bento_service module lays it out."""

    cluster: str
    service: str
    repository: str
    container: str = "app"

    def env(self) -> dict[str, str]:
        """The deploy target variables Terraform's ``client_environment`` output gives a flow run."""
        return {
            "RECOPS_DEPLOY_BACKEND": "ecs",
            "RECOPS_ECS_CLUSTER": self.cluster,
            "RECOPS_ECS_SERVICE": self.service,
            "RECOPS_ECS_CONTAINER": self.container,
            "RECOPS_ECR_REPOSITORY": self.repository,
        }


def push_image(emu: Emulator, repository: str, tag: str) -> None:
    """What CI's ``docker push <repository>:<tag>`` leaves in ECR: an image manifest under the tag
    (the emulator stores manifests, not layers; the digest differs per tag)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": ""},
        "layers": [],
        "annotations": {"recops.tag": tag},
    }
    emu.client("ecr").put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)


def ecs_service(emu: Emulator, *, first_image_tag: str = "v1", name: str = "recops-bento") -> EcsService:
    """A cluster, an image repository holding ``first_image_tag``, and a one-task Fargate service
    running it. Set ``MOTO_ECS_SERVICE_RUNNING=1`` before calling so its rollouts complete (the
    emulator starts no containers; that variable is its stand-in for healthy tasks)."""
    ecs, ecr = emu.client("ecs"), emu.client("ecr")
    ecs.create_cluster(clusterName=name)
    uri = ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")["repository"][
        "repositoryUri"
    ]
    push_image(emu, name, first_image_tag)
    definition = ecs.register_task_definition(
        family=name,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        executionRoleArn="arn:aws:iam::123456789012:role/recops-bento-execution",
        taskRoleArn="arn:aws:iam::123456789012:role/recops-bento-task",
        containerDefinitions=[
            {
                "name": "app",
                "image": f"{uri}:{first_image_tag}",
                "essential": True,
                "portMappings": [{"containerPort": 3000}],
                "environment": [{"name": "RECOPS_API_TOKEN_REQUIRED", "value": "1"}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=name,
        serviceName=name,
        taskDefinition=definition,
        desiredCount=1,
        launchType="FARGATE",
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )
    return EcsService(cluster=name, service=name, repository=name)
