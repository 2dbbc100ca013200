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
"""

from __future__ import annotations

import os
from typing import Any

from metaflow import FlowMutator

GPU_QUEUE_ENV = "RECOPS_BATCH_GPU_QUEUE"


def on_aws_batch() -> bool:
    """Whether Metaflow is set up to run steps on AWS Batch (S3 datastore and a job queue)."""
    from metaflow.metaflow_config import BATCH_JOB_QUEUE, DEFAULT_DATASTORE

    return DEFAULT_DATASTORE == "s3" and bool(BATCH_JOB_QUEUE)


def remote_options() -> dict[str, Any]:
    """Top-level options for Metaflow's Runner: ``--with batch`` on AWS, none locally."""
    return {"decospecs": ["batch"]} if on_aws_batch() else {}


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
