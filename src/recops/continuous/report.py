"""A version's evaluation report, re-rendered when only the report notebook changed.

The training flow's ``report`` step executes the report notebook for its run, and ``register``
keeps the executed notebook with the version (MLflow artifact ``report/evaluation_report.ipynb``)
and the template's hash as tag ``report_hash``. The notebook is no input of the model: a cycle
where it alone changed trains nothing (its code and config hashes leave it out), and instead
re-executes it for the version the cycle settles on (the champion, or the version these inputs
already trained) and replaces that version's report.

A crash halfway: the notebook is executed into a temporary folder, then logged (one upload,
replacing the earlier report), then the tag is set. Killed before the tag, the version keeps
its old tag, so the next cycle renders the report again; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from tempfile import TemporaryDirectory

from recops.config import Config, ConfigError
from recops.paths import REPO_ROOT
from recops.pipeline.steps import REPORT_NOTEBOOK, inject_fault_if_asked, report_template_hash

FAULT = "report-refresh"  # RECOPS_INJECT_FAULT: fail after the upload, before the tag


def report_template(config: Config) -> Path:
    """The report notebook of ``retrain.report_template`` (relative to the project root), else
    notebooks/03_evaluation_report.ipynb; ConfigError when there is no such file."""
    setting = config.retrain.report_template.strip()
    path = (REPO_ROOT / setting) if setting else REPORT_NOTEBOOK
    if not path.is_file():
        raise ConfigError(f"retrain.report_template: no notebook at {path}")
    return path


def template_hash(config: Config) -> str:
    return report_template_hash(report_template(config).read_text())


def stale_report(tags: Mapping[str, str], current: str) -> bool:
    """A version whose report was rendered from another template than ``current`` (one without
    the tag, registered before reports were kept with versions, is left alone)."""
    from recops.registry.store import REPORT_HASH_TAG

    rendered_from = tags.get(REPORT_HASH_TAG, "")
    return bool(rendered_from) and rendered_from != current


def refresh_report(version: int, template: Path) -> str:
    """Execute ``template`` for the Metaflow run that trained ``version`` and make it that
    version's report; returns the run's pathspec."""
    from recops import registry
    from recops.pipeline.steps import run_report_notebook
    from recops.registry.register import log_report
    from recops.registry.store import MODEL_NAME, REPORT_HASH_TAG

    info = registry.get_version(version)
    pathspec = info.tags.get("metaflow_pathspec", "")
    if not pathspec:
        raise registry.RegistryError(f"version {version} has no metaflow_pathspec tag: no run to report on")
    rendered_from = report_template_hash(template.read_text())
    with TemporaryDirectory(prefix="recops-report-") as tmp:
        executed = run_report_notebook(pathspec, Path(tmp) / "executed.ipynb", template)
        with registry.mlflow_client() as client:
            log_report(client, info.run_id, executed, Path(tmp))
            inject_fault_if_asked(FAULT)
            client.set_model_version_tag(MODEL_NAME, str(version), REPORT_HASH_TAG, rendered_from)
    return pathspec
