"""Where the training flow's steps run on AWS: every step on AWS Batch, the GPU step on the GPU
queue and the others on the CPU queue, as infra/terraform builds them.

:func:`remote_options` is what a launcher (the retrain cycle's Runner) adds to the flow's
command line: ``--with batch`` when Metaflow is configured for AWS (an S3 datastore and a
Batch job queue, from the environment or the Metaflow profile), nothing otherwise, so a local
run stays local. ``--with batch`` sends every step to ``METAFLOW_BATCH_JOB_QUEUE`` (the CPU
queue); :class:`GpuQueue`, a Metaflow flow mutator on the flow class, gives the named steps
their own ``@batch(queue=$RECOPS_BATCH_GPU_QUEUE)`` first, and ``--with`` leaves a step that
already has the decorator alone. Their ``@resources`` (gpu, cpu, memory from the config) size
the Batch jobs either way.

The variable is read in the launching process only: inside a Batch job it is unset, the step
there carries the ``--with batch`` of the command line, and nothing changes where it runs.

A Batch job starts with Metaflow's variables only, but the ``register`` step talks to MLflow:
the launcher passes ``MLFLOW_TRACKING_URI`` (and the store and region) with ``--with
environment``, and the MLflow credentials with ``--with secrets`` naming the Secrets Manager
secret ``$RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN`` (its JSON keys are ``MLFLOW_TRACKING_USERNAME``
and ``MLFLOW_TRACKING_PASSWORD``): Metaflow fetches it inside the job, so no credential is on a
command line or in a job definition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from metaflow import FlowMutator

GPU_QUEUE_ENV = "RECOPS_BATCH_GPU_QUEUE"
CREDENTIALS_SECRET_ENV = "RECOPS_MLFLOW_CREDENTIALS_SECRET_ARN"
# What a step on Batch needs from the launcher's environment that is not a secret.
PASSED_TO_JOBS = ("MLFLOW_TRACKING_URI", "RECOPS_STORE", "AWS_DEFAULT_REGION")


def on_aws_batch() -> bool:
    """Whether Metaflow is set up to run steps on AWS Batch (S3 datastore and a job queue)."""
    from metaflow.metaflow_config import BATCH_JOB_QUEUE, DEFAULT_DATASTORE

    return DEFAULT_DATASTORE == "s3" and bool(BATCH_JOB_QUEUE)


def remote_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Top-level options for Metaflow's Runner: ``--with batch`` (plus the environment and the
    MLflow credentials' secret the jobs need) on AWS, none locally."""
    if not on_aws_batch():
        return {}
    env = os.environ if environ is None else environ
    specs = ["batch"]
    if passed := {name: env[name] for name in PASSED_TO_JOBS if env.get(name)}:
        specs.append(f"environment:vars={json.dumps(passed)}")
    if secret := env.get(CREDENTIALS_SECRET_ENV):
        specs.append(f"secrets:sources={json.dumps([secret])}")
    return {"decospecs": specs}


class GpuQueue(FlowMutator):
    """``@GpuQueue("train")``: with ``$RECOPS_BATCH_GPU_QUEUE`` set, those steps run on AWS
    Batch in that queue (see the module docstring); unset, the flow is unchanged."""

    def init(self, *steps: str) -> None:
        self.steps = set(steps)

    def pre_mutate(self, mutable_flow: Any) -> None:
        queue = os.environ.get(GPU_QUEUE_ENV)
        if not queue:
            return
        named = {name for name, _ in mutable_flow.steps}
        if unknown := self.steps - named:
            raise ValueError(f"GpuQueue names steps the flow does not have: {sorted(unknown)}")
        for name, step in mutable_flow.steps:
            if name in self.steps:
                step.add_decorator("batch", deco_kwargs={"queue": queue}, duplicates=step.IGNORE)
