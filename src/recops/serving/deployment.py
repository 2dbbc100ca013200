"""Local deployment: the record of which bento (and checkpoint) the local server answers with,
and waiting until the running server answers with a given model (recops.serving.reconcile
decides what to deploy).

Workers of a server started with a record follow it (:class:`recops.serving.runtime.ModelWatcher`).
In the cloud the same bento goes out as an image: `bentoml containerize`, push to the ECR
repository, `terraform apply -var bento_image_tag=...` (see infra/terraform).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from recops.localproc import wait_until
from recops.paths import recops_home
from recops.serving.model_store import CHECKPOINT_FILE, BentoError, bentoml_home, load_bentoml

DEPLOYMENT_ENV = "RECOPS_DEPLOYMENT_FILE"  # the served model follows this file (see ModelWatcher)
CONFIRM_ANSWERS = 8  # consecutive answers from the new model before a local deploy counts as done


def deployment_file() -> Path:
    """The local deployment record: which bento and model the local server should answer with."""
    return recops_home() / "serving" / "deployment.json"


def _served_entry(bento_tag: str) -> dict[str, Any]:
    """What a record says about the model a bento holds: tags, checkpoint path, labels."""
    bentoml = load_bentoml()
    try:
        bento = bentoml.get(bento_tag)
    except bentoml.exceptions.NotFound as exc:
        raise BentoError(f"no bento {bento_tag!r} in {bentoml_home()}; build it first") from exc
    model_tag = str(bento.info.models[0].tag) if bento.info.models else ""
    try:
        model = bentoml.models.get(model_tag)
    except (bentoml.exceptions.NotFound, ValueError) as exc:
        raise BentoError(f"bento {bento.tag} holds model {model_tag!r}, not in the model store") from exc
    return {
        "bento_tag": str(bento.tag),
        "model_tag": str(model.tag),
        "checkpoint": str(Path(model.path_of(CHECKPOINT_FILE)).resolve()),
        "labels": dict(model.info.labels),
    }


def _write_record(record: dict[str, Any], path: Path | None) -> None:
    from recops.paths import atomic_path

    with atomic_path(path or deployment_file()) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_deployment(bento_tag: str, path: Path | None = None) -> dict[str, Any]:
    """Record ``bento_tag`` (and the model inside it) as the deployed one, atomically.

    A server started by ``recops serve`` watches this file and swaps to the recorded model. A
    shadow in the record stays, unless it is the model now deployed (it was promoted).
    """
    record = {**_served_entry(bento_tag), "deployed_at": _now()}
    shadow = (read_deployment(path) or {}).get("shadow")
    if shadow and shadow.get("model_tag") != record["model_tag"]:
        record["shadow"] = shadow
    _write_record(record, path)
    return record


def set_shadow(bento_tag: str | None, path: Path | None = None) -> dict[str, Any]:
    """Record ``bento_tag``'s model as the shadow of the deployed one (None: no shadow),
    atomically; servers following the record score it on every request, off the response
    path, and log its lists with role ``shadow``."""
    record = read_deployment(path)
    if not record:
        raise BentoError("nothing is deployed: a shadow runs beside a deployed champion (`recops deploy`)")
    record = {key: value for key, value in record.items() if key != "shadow"}
    if bento_tag is not None:
        entry = _served_entry(bento_tag)
        if entry["model_tag"] == record["model_tag"]:
            raise BentoError(f"{bento_tag} is the deployed model itself; a shadow is another model")
        record["shadow"] = {**entry, "deployed_at": _now()}
    _write_record(record, path)
    return record


def read_deployment(path: Path | None = None) -> dict[str, Any] | None:
    target = path or deployment_file()
    try:
        return json.loads(target.read_text())
    except FileNotFoundError:
        return None


def wait_for_model(url: str, version: str, timeout: float, session: list[Any]) -> int:
    """Ask ``url`` until CONFIRM_ANSWERS answers in a row come from model ``version``; the number
    of requests that took. Requests carry the API token (``$RECOPS_API_TOKEN``); a server that
    refuses it raises BentoError at once, as does one that has not switched after ``timeout``
    seconds."""
    import httpx

    from recops.redact import redact
    from recops.serving.auth import TOKEN_ENV, auth_headers

    asked, in_a_row = 0, 0
    with httpx.Client(timeout=10, headers=auth_headers()) as client:

        def confirmed() -> int | None:
            nonlocal asked, in_a_row
            asked += 1
            try:
                response = client.post(f"{url}/recommend", json={"session": session, "k": 1})
                if response.status_code == 401:  # waiting longer will not help
                    problem = (
                        f"refused the API token in ${TOKEN_ENV}"
                        if "authorization" in client.headers
                        else f"requires an API token: set ${TOKEN_ENV}"
                    )
                    raise BentoError(f"the server at {redact(url)} {problem} (401)")
                answer = response.json()
                in_a_row = in_a_row + 1 if str(answer["model"]["version"]) == version else 0
            except (httpx.HTTPError, ValueError, KeyError):
                in_a_row = 0
            return asked if in_a_row >= CONFIRM_ANSWERS else None

        try:
            return wait_until(confirmed, timeout, interval=0.05, what=f"model version {version} answering")
        except TimeoutError as exc:
            raise BentoError(
                f"the server at {redact(url)} did not switch to model version {version} within {timeout:.0f}s"
            ) from exc
