"""Alerts when a cycle fails: a line in ``$RECOPS_HOME/monitoring/failures.jsonl`` and a POST
to the webhook (``[retrain] webhook_url`` or ``$RECOPS_WEBHOOK_URL``)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recops.config import load_config
from recops.paths import recops_home


def failures_file() -> Path:
    return recops_home() / "monitoring" / "failures.jsonl"


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure hook: append the failure to failures.jsonl and POST it to the webhook
    (``[retrain] webhook_url`` or ``$RECOPS_WEBHOOK_URL``), if one is set. Never raises."""
    import httpx

    message = {
        "flow": getattr(flow, "name", "retrain"),
        "flow_run": getattr(flow_run, "name", ""),
        "flow_run_id": str(getattr(flow_run, "id", "")),
        "state": getattr(state, "name", "Failed"),
        "message": str(getattr(state, "message", "")),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = failures_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(message) + "\n")
    url = os.environ.get("RECOPS_WEBHOOK_URL") or _config_webhook(flow_run)
    if url:
        try:
            body = {"text": f"recops retrain failed: {message['message']}", **message}
            httpx.post(url, json=body, timeout=10)
        except httpx.HTTPError as exc:
            print(f"recops: could not post the failure to {url}: {exc}")


def _config_webhook(flow_run: Any) -> str:
    try:
        path = (getattr(flow_run, "parameters", None) or {}).get("config_path")
        return load_config(path).retrain.webhook_url
    except Exception:
        return ""
