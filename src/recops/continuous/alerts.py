"""Alerts: what a person must hear about, posted to the webhook first, then recorded in the store.

The webhook is ``$RECOPS_WEBHOOK_URL``, else ``[retrain] webhook_url``. The POST goes out before
anything is written, so a full disk, a read-only home or an unreachable bucket cannot silence
an alert; the records are written afterwards, best effort. Nothing here raises.

Records (:mod:`recops.store`, ``<store>/monitoring/``): one object per record, never an append
(S3 has none, and a read-modify-write could lose a record), named by UTC time then a random
part so that names sort in time order and two writers never collide (written only where
absent): ``alerts/<utc>-<random>.json`` for every alert, ``failures/<utc>-<random>.json`` for
failed or crashed cycles too. ``last_cycle.json`` is the last cycle's result
(:func:`write_last_cycle`, replaced whole), what `recops status` shows.

Kinds: ``cycle_failed`` / ``cycle_crashed`` (Prefect's on_failure and on_crashed hooks),
``quarantined`` (a bad incoming file moved aside), ``stuck`` (a registry state that needed
repair or could not be repaired), ``not_in_sync`` (serving does not answer with the champion).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from recops.config import Config, load_config
from recops.redact import redact
from recops.store import Store, open_store

log = logging.getLogger(__name__)

MONITORING = "monitoring"
ALERTS, FAILURES = "alerts", "failures"
LAST_CYCLE = "last_cycle.json"


def monitoring_store(config: Config | None = None) -> Store:
    return open_store(config).child(MONITORING)


def _config(config_path: str | None) -> Config | None:
    try:
        return load_config(config_path)
    except Exception:
        return None


def webhook_url(config_path: str | None = None, *, config: Config | None = None) -> str:
    if url := os.environ.get("RECOPS_WEBHOOK_URL"):
        return url
    if config is None:
        config = _config(config_path)
    return config.retrain.webhook_url if config is not None else ""


def send_alert(kind: str, message: str, *, config_path: str | None = None, **details: Any) -> dict[str, Any]:
    """POST the alert to the webhook (if any), then record it (``monitoring/alerts/``); returns it."""
    alert = {
        "kind": kind,
        "message": message,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **details,
    }
    # messages quote errors, and errors quote URIs: no credential leaves in an alert or its record
    alert = {key: redact(value) if isinstance(value, str) else value for key, value in alert.items()}
    log.warning("alert %s: %s", kind, alert["message"])
    config = _config(config_path)
    _post(alert, webhook_url(config=config))
    _record(ALERTS, alert, config)
    return alert


def _post(alert: dict[str, Any], url: str) -> None:
    if not url:
        return
    import httpx

    try:
        httpx.post(url, json={"text": f"recops {alert['kind']}: {alert['message']}", **alert}, timeout=10)
    except httpx.HTTPError as exc:
        # a webhook's path is its secret (Slack, Teams): name the host only
        log.error("could not post the alert to the webhook at %s: %s", urlsplit(url).netloc, redact(str(exc)))


def record_key(now: datetime | None = None) -> str:
    """``20260101T120000.123456Z-1a2b3c4d.json``: sorts by time; the random part keeps two
    records of one microsecond apart."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(4)}.json"


def _record(kind: str, record: dict[str, Any], config: Config | None) -> None:
    store = None
    try:
        store = monitoring_store(config).child(kind)
        store.write_text(record_key(), json.dumps(record, default=str) + "\n", if_absent=True)
    except Exception as exc:  # the alert already went out; say why the record is missing
        log.error("could not record the alert in %s: %s", store.uri if store else kind, exc)


def read_records(kind: str, store: Store | None = None) -> list[dict[str, Any]]:
    """The ``alerts`` or ``failures`` records of ``store`` (default the monitoring store), oldest
    first; an unreadable one is skipped."""
    folder = (store or monitoring_store()).child(kind)
    records = []
    for entry in folder.list(suffixes=(".json",)):
        record = _read_json(folder, entry.key)
        if record is not None:
            records.append(record)
    return records


def read_alerts(store: Store | None = None) -> list[dict[str, Any]]:
    return read_records(ALERTS, store)


def read_failures(store: Store | None = None) -> list[dict[str, Any]]:
    return read_records(FAILURES, store)


def last_failure(store: Store | None = None) -> dict[str, Any] | None:
    folder = (store or monitoring_store()).child(FAILURES)
    for entry in reversed(folder.list(suffixes=(".json",))):
        record = _read_json(folder, entry.key)
        if record is not None:
            return record
    return None


def write_last_cycle(record: dict[str, Any], config: Config | None = None) -> None:
    """The last cycle's result, for `recops status` (replaced whole: old or new, never half)."""
    monitoring_store(config).write_text(LAST_CYCLE, json.dumps(record, default=str, indent=2))


def read_last_cycle(store: Store | None = None) -> dict[str, Any] | None:
    return _read_json(store or monitoring_store(), LAST_CYCLE)


def _read_json(store: Store, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(store.read_text(key))
    except (OSError, ValueError):
        return None


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure and on_crashed hook: alert (webhook first), then a failure record."""
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
    config_path = parameters.get("config_path")
    alert = send_alert(kind, message, config_path=config_path, **details)
    _record(FAILURES, alert, _config(config_path))
