"""The ECS backend of the reconciler: an ECS service whose task definition names the champion's
serving image.

Desired state is the registry's ``champion``; actual state is the image the service's task
definition names and whether its rollout completed (``describe-services``). Deploying model
version N:

1. find the serving image ``<repository>:v<N>`` in ECR (CI builds and pushes it: ``bentoml
   containerize`` of the version's bento, tagged with the model version; ECR tags are
   immutable in infra/terraform, so the tag names one image);
2. the definition to run is the family's newest revision (so what Terraform changed since,
   environment, secrets, sizes, arrives with the next deploy) with the image of container
   ``RECOPS_ECS_CONTAINER`` replaced; a revision that already is exactly that definition is
   reused (a rollback returns to the earlier revision), else a new revision is registered;
3. ``update-service`` to that revision; ECS rolls the tasks, and its deployment circuit breaker
   (enabled in infra/terraform) rolls back a rollout whose tasks do not become healthy;
4. wait with boto3's ``services_stable`` waiter (one deployment, running = desired), then read
   what the service runs.

The target comes from the environment that Terraform's outputs give a flow run:
``RECOPS_ECS_CLUSTER``, ``RECOPS_ECS_SERVICE``, ``RECOPS_ECS_CONTAINER`` (default ``app``) and
``RECOPS_ECR_REPOSITORY``; credentials, region and endpoint are boto3's own
(``AWS_REGION``, ``AWS_ENDPOINT_URL``...).

Crash safety: every step is idempotent. A crash after registering a revision leaves an unused
revision that the next deploy finds and reuses (step 2); a crash after ``update-service`` leaves
ECS rolling out on its own, and the next reconcile sees the service already set to the image
and only waits. Nothing recops holds changes before ECS does.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recops.errors import RecopsError
from recops.serving.reconcile import ServiceState

log = logging.getLogger(__name__)

IMAGE_TAG_PREFIX = "v"  # the serving image of model version 7 is <repository>:v7
VERSION_TAG = "recops:model-version"  # on each task-definition revision registered here
REVISIONS_SEARCHED = 20  # newest revisions of the family looked through for one to reuse
TARGET_ENV = {
    "cluster": "RECOPS_ECS_CLUSTER",
    "service": "RECOPS_ECS_SERVICE",
    "container": "RECOPS_ECS_CONTAINER",
    "repository": "RECOPS_ECR_REPOSITORY",
}
# Fields of describe-task-definition that register-task-definition takes back unchanged.
REGISTER_FIELDS = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


class EcsDeployError(RecopsError):
    """The ECS service cannot be set to the champion; the message says what is missing."""


def image_tag(version: int | str) -> str:
    return f"{IMAGE_TAG_PREFIX}{version}"


def version_of_image(image: str) -> str | None:
    """The model version an image reference names (``…/repo:v7`` → ``"7"``), else None."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    if tag.startswith(IMAGE_TAG_PREFIX) and tag[len(IMAGE_TAG_PREFIX) :].isdigit():
        return tag[len(IMAGE_TAG_PREFIX) :]
    return None


@dataclass(frozen=True)
class EcsTarget:
    cluster: str
    service: str
    repository: str
    container: str = "app"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> EcsTarget:
        env = os.environ if environ is None else environ
        missing = [var for key, var in TARGET_ENV.items() if key != "container" and not env.get(var)]
        if missing:
            raise EcsDeployError(
                f"RECOPS_DEPLOY_BACKEND=ecs needs {', '.join(missing)}: the bento service's cluster, "
                "service and image repository (infra/terraform outputs `client_environment`)"
            )
        return cls(
            cluster=env[TARGET_ENV["cluster"]],
            service=env[TARGET_ENV["service"]],
            repository=env[TARGET_ENV["repository"]],
            container=env.get(TARGET_ENV["container"]) or "app",
        )

    @property
    def address(self) -> str:
        return f"ecs://{self.cluster}/{self.service}"


DEPLOYMENTS_PREFIX = "serving/deployments"  # in the store: one object per deploy


def record_deployment(target: EcsTarget, revision: str, image: str) -> str:
    """One record per deploy in the store (``serving/deployments/<utc>-v<N>.json``): what was
    set, where and when. A new object each time (never rewritten); the service itself stays
    the truth of what runs, so a crash before this write loses only the history line."""
    from recops.store import open_store

    now = datetime.now(UTC)
    version = version_of_image(image) or "unknown"
    record = {
        "backend": "ecs",
        "target": target.address,
        "task_definition": revision,
        "image": image,
        "model_version": version,
        "deployed_at": now.isoformat(timespec="seconds"),
    }
    key = f"{DEPLOYMENTS_PREFIX}/{now:%Y%m%dT%H%M%S%fZ}-v{version}.json"
    open_store().write_text(key, json.dumps(record, indent=2), if_absent=True)
    return key


def _registrable(definition: dict[str, Any]) -> dict[str, Any]:
    """The part of a described task definition that register-task-definition takes back."""
    return {key: definition[key] for key in REGISTER_FIELDS if definition.get(key) not in (None, [], {})}


class EcsBackend:
    """Deploys images to one ECS service; see the module docstring for the steps."""

    name = "ecs"

    def __init__(self, target: EcsTarget | None = None, *, ecs: Any = None, ecr: Any = None) -> None:
        import boto3

        self.target = target or EcsTarget.from_env()
        self.ecs = ecs or boto3.client("ecs")
        self.ecr = ecr or boto3.client("ecr")

    # --- what the protocol asks ---------------------------------------------------------------
    def artifact(self, version: int) -> tuple[str, bool]:
        """The serving image of ``version`` in ECR (never built here: that is CI's job)."""
        return self.image_uri(version), False

    def deployed(self) -> tuple[str, str] | None:
        service = self._service()
        image = self._image(self._task_definition(service["taskDefinition"]))
        return image, version_of_image(image) or ""

    def deploy(self, image: str) -> None:
        service = self._service()
        family = self._task_definition(service["taskDefinition"])["family"]
        recent = self._recent_revisions(family)  # newest first; Terraform's template among them
        wanted = self._with_image(_registrable(recent[0]), image)
        revision = next(
            (str(d["taskDefinitionArn"]) for d in recent if _registrable(d) == wanted), None
        ) or self._register(wanted, image)
        self.ecs.update_service(
            cluster=self.target.cluster, service=self.target.service, taskDefinition=revision
        )
        log.info("ecs: service %s set to %s (%s)", self.target.address, revision, image)
        record_deployment(self.target, revision, image)

    def services(self, version: str | None, timeout: float) -> list[ServiceState]:
        if version is not None and timeout > 0:
            self._wait_stable(timeout)
        service = self._service()
        image = self._image(self._task_definition(service["taskDefinition"]))
        deployments = service.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
        running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
        detail = f"{service['taskDefinition'].rpartition('/')[2]}, {running}/{desired} tasks running"
        if primary.get("rolloutState"):
            detail += f", rollout {primary['rolloutState']}"
        # A rollout counts once it is over: one deployment left, every task running (ECS's own
        # "services stable"). Until then the service answers with a mix, reported as no version.
        stable = len(deployments) == 1 and running == desired and primary.get("rolloutState") != "FAILED"
        if not stable:
            detail += f" ({primary.get('rolloutStateReason') or 'rollout not finished'})"
        return [ServiceState(self.target.address, version_of_image(image) if stable else None, detail)]

    # --- ECR and ECS --------------------------------------------------------------------------
    def image_uri(self, version: int | str) -> str:
        tag = image_tag(version)
        ecr = self.ecr
        try:
            repository = ecr.describe_repositories(repositoryNames=[self.target.repository])
            ecr.describe_images(repositoryName=self.target.repository, imageIds=[{"imageTag": tag}])
        except ecr.exceptions.RepositoryNotFoundException as exc:
            raise EcsDeployError(f"no ECR repository {self.target.repository!r}") from exc
        except ecr.exceptions.ImageNotFoundException as exc:
            raise EcsDeployError(
                f"no serving image {self.target.repository}:{tag} in ECR for model version {version}; "
                "build and push it first (README, 'On AWS': bentoml containerize, docker push)"
            ) from exc
        return f"{repository['repositories'][0]['repositoryUri']}:{tag}"

    def _service(self) -> dict[str, Any]:
        found = self.ecs.describe_services(cluster=self.target.cluster, services=[self.target.service])
        services = [s for s in found.get("services", []) if s.get("status") != "INACTIVE"]
        if not services:
            raise EcsDeployError(f"no ECS service {self.target.address} (is the Terraform applied?)")
        return services[0]

    def _task_definition(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def _container(self, definition: dict[str, Any]) -> dict[str, Any]:
        for container in definition["containerDefinitions"]:
            if container["name"] == self.target.container:
                return container
        names = [c["name"] for c in definition["containerDefinitions"]]
        raise EcsDeployError(
            f"task definition {definition['taskDefinitionArn']} has no container "
            f"{self.target.container!r} (it has {names}); set RECOPS_ECS_CONTAINER"
        )

    def _image(self, definition: dict[str, Any]) -> str:
        return str(self._container(definition)["image"])

    def _recent_revisions(self, family: str) -> list[dict[str, Any]]:
        """The newest active revisions of ``family``, newest first."""
        arns = self.ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=REVISIONS_SEARCHED
        )["taskDefinitionArns"]
        found = [self._task_definition(arn) for arn in arns]
        found = [d for d in found if d["family"] == family]  # a prefix matches longer names too
        found.sort(key=lambda d: d["revision"], reverse=True)  # sort=DESC is not every ECS API's
        if not found:
            raise EcsDeployError(f"task-definition family {family!r} has no active revision")
        return found

    def _with_image(self, spec: dict[str, Any], image: str) -> dict[str, Any]:
        self._container(spec | {"taskDefinitionArn": spec["family"]})  # the container must exist
        containers = [
            {**c, "image": image} if c["name"] == self.target.container else c
            for c in spec["containerDefinitions"]
        ]
        return {**spec, "containerDefinitions": containers}

    def _register(self, spec: dict[str, Any], image: str) -> str:
        version = version_of_image(image) or "unknown"
        registered = self.ecs.register_task_definition(**spec, tags=[{"key": VERSION_TAG, "value": version}])
        arn = str(registered["taskDefinition"]["taskDefinitionArn"])
        log.info("ecs: registered %s for model version %s", arn, version)
        return arn

    def _wait_stable(self, timeout: float) -> None:
        delay = max(1, min(15, int(timeout / 20) or 1))
        waiter = self.ecs.get_waiter("services_stable")
        try:
            waiter.wait(
                cluster=self.target.cluster,
                services=[self.target.service],
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))},
            )
        except Exception as exc:  # botocore's WaiterError: reported by services() as not in sync
            log.warning("ecs: %s not stable after %.0f s: %s", self.target.address, timeout, exc)
