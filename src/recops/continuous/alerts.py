"""Alerts: what a person must hear about, posted to the webhook first, then recorded locally.

The webhook is ``$RECOPS_WEBHOOK_URL``, else ``[retrain] webhook_url``. The POST goes out before
anything is written here, so a full disk or a read-only home cannot silence an alert; the local
records (``$RECOPS_HOME/monitoring/alerts.jsonl``, and ``failures.jsonl`` for failed or crashed
cycles) are written afterwards, best effort. Nothing here raises.

Kinds: ``cycle_failed`` / ``cycle_crashed`` (Prefect's on_failure and on_crashed hooks),
``quarantined`` (a bad incoming file moved aside), ``stuck`` (a registry state that needed
repair or could not be repaired), ``not_in_sync`` (serving does not answer with the champion).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recops.config import load_config
from recops.paths import recops_home

log = logging.getLogger(__name__)


def monitoring_dir() -> Path:
    return recops_home() / "monitoring"


def failures_file() -> Path:
    return monitoring_dir() / "failures.jsonl"


def alerts_file() -> Path:
    return monitoring_dir() / "alerts.jsonl"


def webhook_url(config_path: str | None = None) -> str:
    if url := os.environ.get("RECOPS_WEBHOOK_URL"):
        return url
    try:
        return load_config(config_path).retrain.webhook_url
    except Exception:
        return ""


def send_alert(kind: str, message: str, *, config_path: str | None = None, **details: Any) -> dict[str, Any]:
    """POST the alert to the webhook (if any), then append it to alerts.jsonl; returns it."""
    alert = {
        "kind": kind,
        "message": message,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **details,
    }
    log.warning("alert %s: %s", kind, message)
    _post(alert, webhook_url(config_path))
    _append(alerts_file(), alert)
    return alert


def _post(alert: dict[str, Any], url: str) -> None:
    if not url:
        return
    import httpx

    try:
        httpx.post(url, json={"text": f"recops {alert['kind']}: {alert['message']}", **alert}, timeout=10)
    except httpx.HTTPError as exc:
        log.error("could not post the alert to %s: %s", url, exc)


def _append(path: Path, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")
    except OSError as exc:  # the alert already went out; say why the record is missing
        log.error("could not record the alert in %s: %s", path, exc)


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure and on_crashed hook: alert (webhook first), then failures.jsonl."""
    crashed = getattr(state, "is_crashed", lambda: False)()
    parameters = getattr(flow_run, "parameters", None) or {}
    details = {
        "flow": getattr(flow, "name", "retrain"),
        "flow_run": getattr(flow_run, "name", ""),
        "flow_run_id": str(getattr(flow_run, "id", "")),
        "state": getattr(state, "name", "Failed"),
    }
    message = str(getattr(state, "message", ""))
    kind = "cycle_crashed" if crashed else "cycle_failed"
    alert = send_alert(kind, message, config_path=parameters.get("config_path"), **details)
    _append(failures_file(), alert)
