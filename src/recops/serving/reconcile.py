"""Desired state and actual state of serving, and the one function that makes them equal.

The desired state is the registry's ``champion`` alias; the actual state is what each running
service answers with. :func:`reconcile` builds the champion's bento when none exists (bentos
carry the model version in their labels), deploys it through a :class:`DeployBackend`, and
waits until every running service answers with that version. Every retrain cycle ends with
it, skipped cycles included, and so do ``recops registry promote`` / ``rollback`` and
``recops deploy``.

Backends (``RECOPS_DEPLOY_BACKEND``, see :func:`default_backend`): :class:`LocalBackend` (the
deployment record ``$RECOPS_HOME/serving/deployment.json`` that a running ``recops serve``
follows; the bento is built here when missing) and :class:`recops.serving.ecs.EcsBackend` (an
ECS service set to the champion's serving image in ECR, which CI builds).

Crash safety: the steps are idempotent and ordered so that a crash anywhere leaves a state the
next call finishes. A bento built but not deployed is found by its labels and reused; the
record is written atomically (old or new, never half); a server that had not switched yet
switches when it reads the record, and the next reconcile confirms it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from recops.serving.deployment import read_deployment, wait_for_model, write_deployment
from recops.serving.model_store import BentoError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServiceState:
    """What one running service answers with."""

    target: str  # where it runs, e.g. the local server's URL
    model_version: str | None  # the registry version it answers with; None: no answer
    detail: str = ""


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of one reconcile: desired and actual state, and what was done to align them."""

    desired_version: int | None  # the champion; None: no champion yet, nothing to serve
    bento_tag: str | None
    deployed_version: str | None  # what the deployment record names after the call
    services: list[ServiceState] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        if self.desired_version is None:
            return True
        want = str(self.desired_version)
        return self.deployed_version == want and all(s.model_version == want for s in self.services)

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired_version": self.desired_version,
            "bento_tag": self.bento_tag,
            "deployed_version": self.deployed_version,
            "services": [s.__dict__ for s in self.services],
            "actions": list(self.actions),
            "in_sync": self.in_sync,
        }


class DeployBackend(Protocol):
    """Where a bento is deployed and how to ask what its services answer with."""

    name: str

    def artifact(self, version: int) -> tuple[str, bool]:
        """What deploying ``version`` means here (a bento tag, an image URI), and whether it was
        built by this call."""

    def deployed(self) -> tuple[str, str] | None:
        """(bento tag, model version) the target is set to serve, or None."""

    def deploy(self, bento_tag: str) -> None:
        """Set the target to serve ``bento_tag`` (atomically)."""

    def services(self, version: str | None, timeout: float) -> list[ServiceState]:
        """Every running service and the version it answers with; with ``version``, wait up to
        ``timeout`` seconds for each to answer with it."""


class LocalBackend:
    """The local deployment record and the `recops serve` server that follows it."""

    name = "local"

    def artifact(self, version: int) -> tuple[str, bool]:
        from recops.serving.build import build_bento, find_bento

        bento = find_bento(version)
        if bento is not None:
            return bento, False
        return build_bento(version=version), True

    def deployed(self) -> tuple[str, str] | None:
        record = read_deployment()
        if not record:
            return None
        return record["bento_tag"], str(record.get("labels", {}).get("model_version", ""))

    def deploy(self, bento_tag: str) -> None:
        write_deployment(bento_tag)

    def services(self, version: str | None, timeout: float) -> list[ServiceState]:
        from recops.serving.server import running_server

        url = running_server()
        if url is None:
            return []  # nothing runs: `recops serve` starts with the record
        if version is None:
            return [ServiceState(url, answered_version(url))]
        try:
            asked = wait_for_model(url, version, timeout, session=[])
        except BentoError as exc:
            return [ServiceState(url, answered_version(url), str(exc))]
        return [ServiceState(url, version, f"confirmed in {asked} requests")]


def answered_version(url: str) -> str | None:
    """The model version one answer of the service at ``url`` carries (None: no answer, a
    refusal included). The request carries the API token (``$RECOPS_API_TOKEN``)."""
    import httpx

    from recops.serving.auth import auth_headers

    try:
        response = httpx.post(
            f"{url}/recommend", json={"session": [], "k": 1}, headers=auth_headers(), timeout=10
        )
        return str(response.json()["model"]["version"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


BACKEND_ENV = "RECOPS_DEPLOY_BACKEND"
BACKENDS = ("local", "ecs")


def default_backend() -> DeployBackend:
    """The backend ``$RECOPS_DEPLOY_BACKEND`` names: ``local`` (default) or ``ecs``."""
    name = os.environ.get(BACKEND_ENV) or "local"
    if name == "local":
        return LocalBackend()
    if name == "ecs":
        from recops.serving.ecs import EcsBackend

        return EcsBackend()
    raise BentoError(f"{BACKEND_ENV}={name!r} is not a deploy backend; choose one of {', '.join(BACKENDS)}")


def champion_version() -> int | None:
    """The champion's version; None only when the registry has no champion (a registry that
    cannot be read raises RegistryError: an outage is not "nothing to serve")."""
    from recops import registry
    from recops.registry.versions import alias_map

    with registry.mlflow_client() as client:
        return alias_map(client).get(registry.CHAMPION)


def reconcile(
    backend: DeployBackend | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    expected_version: int | None = None,
) -> Reconciliation:
    """Make what the backend serves equal the champion: build its bento if missing, deploy it,
    wait until every running service answers with it.

    ``expected_version`` is the champion a caller (a cycle) gated; when the champion has moved
    since, this reconciles to the current champion and says so.
    """
    backend = backend or default_backend()
    desired = champion_version()
    actions: list[str] = []
    if expected_version is not None and desired != expected_version:
        actions.append(f"champion is version {desired}, not {expected_version} as gated: serving {desired}")
    if desired is None:
        deployed = backend.deployed()
        return Reconciliation(
            None, None, deployed[1] if deployed else None, backend.services(None, 0), actions
        )
    bento, built = backend.artifact(desired)
    if built:
        actions.append(f"built bento {bento} for version {desired}")
    deployed = backend.deployed()
    if deployed is None or deployed[0] != bento:
        backend.deploy(bento)
        actions.append(f"deployed {bento} ({backend.name})")
    services = backend.services(str(desired), timeout)
    result = Reconciliation(desired, bento, str(desired), services, actions)
    for action in actions:
        log.debug("reconcile: %s", action)
    if not result.in_sync:
        log.warning("reconcile: not in sync after %.0f s: %s", timeout, [s.__dict__ for s in services])
    return result


def observe(backend: DeployBackend | None = None) -> Reconciliation:
    """Desired and actual state without changing anything (for `recops status`)."""
    from recops.serving.build import find_bento

    backend = backend or default_backend()
    desired = champion_version()
    deployed = backend.deployed()
    if backend.name == "local":
        bento = find_bento(desired) if desired is not None else None
    else:  # what the target runs (an image): built elsewhere, nothing to look up here
        bento = deployed[0] if deployed else None
    return Reconciliation(desired, bento, deployed[1] if deployed else None, backend.services(None, 0))


def deploy_shadow(version: int | None, backend: DeployBackend | None = None) -> str | None:
    """Score ``version`` in shadow beside the deployed champion (None: no shadow): build its
    bento if missing and add it to the deployment record, which running servers follow. The
    bento tag, or None. Only the local backend has a shadow slot; an ECS service runs one image."""
    from recops.serving.deployment import set_shadow

    backend = backend or default_backend()
    if backend.name != "local":
        raise BentoError(
            f"the {backend.name} backend has no shadow slot (one image per service); "
            "score a challenger in shadow with a local `recops serve`"
        )
    if version is None:
        set_shadow(None)
        return None
    bento, _ = backend.artifact(version)
    set_shadow(bento)
    return bento


def deployed_shadow() -> str | None:
    """The model version the local deployment record scores in shadow, if any."""
    shadow = (read_deployment() or {}).get("shadow") or {}
    return str(shadow.get("labels", {}).get("model_version", "")) or None
