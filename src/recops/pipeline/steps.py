"""What the Metaflow flows call besides the core library: config parsing, data expectations,
the executed evaluation-report notebook, registration with lineage, and the run summary. Steps
stay a docstring and a call or two."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd

from recops.config import Config, ConfigError, config_from_dict
from recops.data import DataValidationError
from recops.data.split import MIN_EVAL_LENGTH
from recops.paths import REPO_ROOT
from recops.redact import redact

DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.toml"


REPORT_NOTEBOOK = REPO_ROOT / "notebooks" / "03_evaluation_report.ipynb"


class DataExpectationError(DataValidationError):
    """Valid rows, but not data a model can be trained and evaluated on."""


class InjectedFault(RuntimeError):
    """Raised on purpose (RECOPS_INJECT_FAULT=<step>) to test `resume` and failure handling."""


def inject_fault_if_asked(step_name: str) -> None:
    if os.environ.get("RECOPS_INJECT_FAULT") == step_name:
        raise InjectedFault(f"fault injected into step {step_name!r} (RECOPS_INJECT_FAULT)")


def parse_toml_config(text: str) -> dict[str, Any]:
    """Metaflow ``Config`` parser: TOML, validated against recops' typed config at launch.

    A bad config is a :class:`metaflow.exception.MetaflowException`, which Metaflow reports as
    one clean error; any other exception from a parser is an "Internal error" with a traceback."""
    from metaflow.exception import MetaflowException

    class InvalidConfig(MetaflowException):
        headline = "Invalid --config"

    try:
        tree = tomllib.loads(text)
        return config_from_dict(tree).to_dict()
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"config is not valid TOML: {exc}") from None
    except ConfigError as exc:
        raise InvalidConfig(str(exc)) from None


def flow_config(value: Any, overrides: dict[str, Any] | None = None) -> Config:
    """The typed Config from a Metaflow Config value plus parameter overrides (None = keep)."""
    tree = json.loads(json.dumps(dict(value), default=dict))  # ConfigValue -> plain nested dicts
    for dotted, override in (overrides or {}).items():
        if override is None:
            continue
        section, key = dotted.split(".")
        tree.setdefault(section, {})[key] = override
    return config_from_dict(tree)


def check_expectations(events: pd.DataFrame) -> dict[str, int]:
    """Data expectations beyond the schema; raises with every unmet one listed."""
    lengths = events.groupby("sequence_id").size()
    summary = {
        "events": len(events),
        "sequences": len(lengths),
        "items": int(events["item_id"].nunique()),
        "evaluable_sequences": int((lengths >= MIN_EVAL_LENGTH).sum()),
    }
    problems = []
    if summary["items"] < 2:
        problems.append(f"only {summary['items']} distinct item(s); a recommender needs at least 2")
    if summary["evaluable_sequences"] == 0:
        problems.append(f"no sequence has {MIN_EVAL_LENGTH} or more events, so nothing can be evaluated")
    if problems:
        raise DataExpectationError("data expectations not met: " + "; ".join(problems))
    return summary


def check_report_template(text: str) -> None:
    """Refuse a report template that papermill could not run: it must be a Jupyter notebook
    (JSON with a list of cells)."""
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--report_template is not a Jupyter notebook (not JSON: {exc})") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("--report_template is not a Jupyter notebook (no list of cells)")


def run_report_notebook(run_pathspec: str, output: Path, notebook: Path) -> dict[str, Any]:
    """Execute ``notebook`` (the evaluation report) for a run with papermill; return the executed notebook."""
    import papermill

    from recops.pipeline.papermill_engine import ENGINE_NAME

    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters={"run_pathspec": run_pathspec},
        cwd=os.getcwd(),
        progress_bar=False,
        kernel_name="python3",
        engine_name=ENGINE_NAME,  # the kernel's traffic encrypted (recops.pipeline.papermill_engine)
    )
    return json.loads(output.read_text())


def git_commit(root: Path = REPO_ROOT) -> str:
    """The checked-out commit of the code that runs, or of ``root``; outside a git checkout the
    commit an image was built from (``$RECOPS_GIT_COMMIT``, the training image's build argument),
    else ``unknown``."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else os.environ.get("RECOPS_GIT_COMMIT") or "unknown"


def check_warm_start(choice: str) -> None:
    """``--warm_start`` is empty, "champion" or a version number (ConfigError otherwise); which
    version it names is resolved when the train step loads it (:func:`warm_start_from`), so
    that the start step does not pay for the registry client."""
    choice = choice.strip()
    if choice and choice != "champion" and not choice.isdigit():
        raise ConfigError(f"--warm_start must be 'champion' or a version number, got {choice!r}")


def warm_start_version(choice: str, data_fingerprint: str = "") -> int | None:
    """The registered version a training run starts from (``--warm_start``): none for "",
    the champion's for "champion" (none when there is no champion yet: the first model trains
    from scratch; none either when the champion was trained on these very events, given their
    ``data_fingerprint``: continuing it on the same data is what its early stopping already
    declined, and training from scratch reproduces it, or reuses it from the step cache), or
    the version number given, which must exist. Raises ConfigError for anything else,
    RegistryError for a version that is not registered."""
    check_warm_start(choice)
    choice = choice.strip()
    if not choice:
        return None
    from recops import registry
    from recops.registry.versions import alias_version

    if choice == registry.CHAMPION:
        with registry.mlflow_client() as client:
            version = alias_version(client, registry.CHAMPION)
        trained_on = registry.get_version(version).tags.get("data_fingerprint") if version else None
        if data_fingerprint and trained_on == data_fingerprint:
            print(f"warm start: the champion (version {version}) was trained on these events; from scratch")
            return None
        print(f"warm start: from version {version}" if version else "warm start: no champion, from scratch")
        return version
    return registry.get_version(int(choice)).version  # a version that does not exist fails here


def warm_start_input(flow: Any) -> dict[str, Any]:
    """What the train step's cache key needs from outside the run: the version a warm start
    begins from (the champion changes between runs that are otherwise identical)."""
    if not flow.warm_start.strip():
        return {"warm_start_version": None}
    return {"warm_start_version": warm_start_version(flow.warm_start, flow.data_fingerprint)}


def warm_start_from(choice: str, data_fingerprint: str = "") -> tuple[int | None, tuple[Any, str] | None]:
    """(version, (checkpoint, "version N")) for ``--warm_start``, the second being
    :func:`recops.training.experiment.fit`'s ``warm_from``; (None, None) for from scratch."""
    version = warm_start_version(choice, data_fingerprint)
    if version is None:
        return None, None
    from recops import registry

    checkpoint, info = registry.load_checkpoint(version)
    return info.version, (checkpoint, f"version {info.version}")


def report_template_hash(text: str) -> str:
    """Identifies a report notebook's content (tag REPORT_HASH_TAG of the versions it rendered)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def register_and_gate(
    checkpoint: Any,
    history: list[dict[str, Any]],
    evaluation: Any,
    test_set: Any,
    pathspec: str,
    settings: Config,
    data_profile: Any = None,
    baseline: Any = None,
    step_cache: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    report_template: str = "",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Log and register the model (alias challenger), then gate it; both results as plain dicts
    (Metaflow artifacts anyone can read; :meth:`GateDecision.from_dict` reads the second back).

    ``baseline``: the best simple baseline on the same split
    (:func:`recops.training.baselines.baseline_to_beat`), computed by the caller before this
    call so that nothing is registered when it fails; saved with the version for the gate.
    ``step_cache``: the run's ledger (recops.pipeline.cache); what it saved becomes tags.
    ``report``: the executed report notebook, registered with the version, and
    ``report_template`` the notebook it was rendered from (its hash a tag: a cycle where only
    the template changed re-renders the report, :mod:`recops.continuous.report`)."""
    from recops import registry
    from recops.pipeline.cache import ledger_totals
    from recops.registry.store import REPORT_HASH_TAG
    from recops.training.lineage import code_hash, config_hash

    lineage = {
        "metaflow_pathspec": pathspec,
        "git_commit": git_commit(),
        "code_hash": code_hash(),
        "config_hash": config_hash(settings, checkpoint.model_name),
    }
    if report_template:
        lineage[REPORT_HASH_TAG] = report_template_hash(report_template)
    if step_cache:
        saved = ledger_totals(step_cache)
        lineage["step_cache_hits"] = ",".join(saved["hits"]) or "none"
        lineage["step_cache_seconds_saved"] = f"{saved['seconds_saved']:.2f}"
        if saved["cost_saved"] is not None:
            lineage["step_cache_cost_saved_usd"] = f"{saved['cost_saved']:.6f}"
    version = registry.log_and_register(
        checkpoint,
        history,
        evaluation,
        lineage,
        test_set=test_set,
        data_profile=data_profile,
        baseline=baseline,
        report=report,
    )
    decision = registry.gate(version.version, settings.gate)
    return (
        {"name": version.name, "version": version.version, "run_id": version.run_id},
        decision.to_dict(),
    )


def run_summary(
    run_pathspec: str,
    checkpoint: Any,
    metrics: dict[str, float],
    decision: dict[str, Any] | None = None,
    step_cache: dict[str, Any] | None = None,
) -> str:
    """What a person wants after a run: the figures, what the step cache saved, where to look next."""
    from recops.pipeline.cache import ledger_line
    from recops.registry import tracking_uri

    flow, run_id = run_pathspec.split("/")
    figures = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("ndcg@10", "hr@10", "mrr@10"))
    return "\n".join(
        [
            f"{run_pathspec}: {checkpoint.model_name} on {checkpoint.dataset}",
            f"  test  {figures}",
            f"  data  {checkpoint.data_fingerprint}",
            f"  gate  {decision['reason']}" if decision else "  gate  (not run)",
            f"  {ledger_line(step_cache)}",
            f"  mlflow  mlflow ui --backend-store-uri {redact(tracking_uri())}",
            f"  cards   python flows/train_recommender.py card get {run_id}/train --id training t.html",
            "          (also evaluate --id evaluation, report --id report; `card view` opens a browser)",
            f"  client  from metaflow import Run; Run('{run_pathspec}').data.metrics",
            f"  flow    {flow}",
        ]
    )
