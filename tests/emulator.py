"""moto's AWS emulator as a real HTTP server on 127.0.0.1, for tests that talk to S3, ECR, ECS,
Secrets Manager and IAM the way production code does: through boto3, s3fs, Metaflow and MLflow
pointed at its endpoint. Named an emulator everywhere it is used; nothing here is a mock of
recops code.

``emulator()`` starts one (moto's ThreadedMotoServer, in this process), ``Emulator.env()`` is
the environment a child process needs to reach it (every client library reads
``AWS_ENDPOINT_URL``; Metaflow and MLflow have their own variables, set too).
"""

from __future__ import annotations

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
    try:
        yield Emulator(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
