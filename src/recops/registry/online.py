"""Online figures of a model version in the registry: what shoppers did after its answers.

:func:`record_online` writes one measurement of a version (``recops.continuous.online``): as
version tags (``online_ndcg_at_10``, ``online_pairs``, ``online_role``, ``online_window``,
``online_measured_at``, ...: the latest measurement, what the registry list and the gate read)
and as metrics of the version's MLflow run, timed at the end of the measured window (the
history across windows, for MLflow's charts). :func:`set_online_baseline` fixes the figure a
champion's later windows are compared with (retraining on degradation).

Crash halfway: tags are set one by one, the metrics last. A crash leaves a measurement whose
tags are partly the new and partly the previous one's, which the next measurement overwrites;
``online_measured_at`` is written last among the tags, so a reader sees the older time until
every figure of the new measurement is in place.
"""

from __future__ import annotations

from mlflow.entities import Metric

from recops.registry.store import MODEL_NAME, mlflow_client, utc_now
from recops.registry.versions import version_info

ONLINE_PREFIX = "online_"
BASELINE_TAG = "online_baseline_ndcg_at_10"


def metric_key(name: str) -> str:
    """``ndcg@10`` -> ``online_ndcg_at_10`` (MLflow keys hold no ``@``)."""
    return ONLINE_PREFIX + name.replace("@", "_at_")


def record_online(
    version: int, figures: dict[str, float], details: dict[str, str], window_end: float
) -> None:
    """Tag ``version`` with ``figures`` (metric name -> value) and ``details`` (role, pairs, ...)
    and log the figures to its run at ``window_end`` (epoch seconds)."""
    tags = {metric_key(name): f"{value:.6f}" for name, value in figures.items()}
    tags.update({ONLINE_PREFIX + key: value for key, value in details.items()})
    with mlflow_client() as client:
        info = version_info(client, version)
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)
        client.set_model_version_tag(MODEL_NAME, str(version), ONLINE_PREFIX + "measured_at", utc_now())
        if info.run_id:
            stamp = int(window_end * 1000)
            metrics = [Metric(metric_key(name), float(value), stamp, 0) for name, value in figures.items()]
            client.log_batch(info.run_id, metrics=metrics)


def set_online_baseline(version: int, ndcg_at_10: float) -> None:
    """The online NDCG@10 this version's later windows are compared with."""
    with mlflow_client() as client:
        client.set_model_version_tag(MODEL_NAME, str(version), BASELINE_TAG, f"{ndcg_at_10:.6f}")
        client.set_model_version_tag(MODEL_NAME, str(version), BASELINE_TAG + "_set_at", utc_now())


def settle_shadow(
    version: int, tags: dict[str, str], promote: bool, reason: str, expected_champion: int
) -> None:
    """Record a shadow comparison on ``version`` (``tags``), then decide: ``promote`` moves
    ``champion`` to it if it is still ``expected_champion`` (compare-and-set), else it is
    rejected. The decision is appended to its gate history (recops.registry.history); its
    ``gate_decision`` says ``shadow`` until the new one is written, last."""
    from recops.registry.aliases import move_champion
    from recops.registry.gate_rules import GateAction, GateDecision
    from recops.registry.history import record_decision

    with mlflow_client() as client:
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)
        if promote:
            move_champion(client, version, "shadow", expected_champion=expected_champion)
        action = GateAction.PROMOTED if promote else GateAction.REJECTED
        record_decision(client, version, GateDecision(action, reason), replace_figures=False)


def record_shadow(version: int, tags: dict[str, str]) -> None:
    """A shadow comparison that decides nothing yet, on ``version``'s tags."""
    with mlflow_client() as client:
        for key, value in tags.items():
            client.set_model_version_tag(MODEL_NAME, str(version), key, value)


def finish_promotion(version: int) -> None:
    """A shadow promotion whose alias moved but whose decision tags were not written (a crash
    between the two): write them."""
    from recops.registry.gate_rules import GateAction, GateDecision
    from recops.registry.history import record_decision

    reason = "promoted after its shadow comparison (decision tags written after an interruption)"
    with mlflow_client() as client:
        record_decision(client, version, GateDecision(GateAction.PROMOTED, reason), replace_figures=False)
