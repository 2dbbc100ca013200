"""Which report notebook a cycle uses, and when a version's report is stale
(recops.continuous.report; the re-rendering itself: tests/integration/test_continuous_training.py)."""

from __future__ import annotations

import pytest

from recops.config import ConfigError, load_config
from recops.continuous.report import report_template, stale_report, template_hash
from recops.paths import REPO_ROOT
from recops.pipeline.steps import REPORT_NOTEBOOK, report_template_hash
from recops.registry.store import REPORT_HASH_TAG

pytestmark = pytest.mark.unit


def test_the_report_notebook_is_the_default_one_or_the_configured_one(tmp_path):
    assert report_template(load_config()) == REPORT_NOTEBOOK
    relative = REPORT_NOTEBOOK.relative_to(REPO_ROOT).as_posix()  # relative to the project root
    assert report_template(load_config(overrides={"retrain.report_template": relative})) == REPORT_NOTEBOOK
    mine = tmp_path / "mine.ipynb"
    mine.write_text('{"cells": []}')
    config = load_config(overrides={"retrain.report_template": str(mine)})
    assert report_template(config) == mine
    assert template_hash(config) == report_template_hash('{"cells": []}') != template_hash(load_config())
    missing = load_config(overrides={"retrain.report_template": str(tmp_path / "gone.ipynb")})
    with pytest.raises(ConfigError, match=r"retrain.report_template: no notebook at .*gone.ipynb"):
        report_template(missing)


def test_a_report_is_stale_only_when_another_notebook_rendered_it():
    current = report_template_hash("new")
    assert stale_report({REPORT_HASH_TAG: report_template_hash("old")}, current)
    assert not stale_report({REPORT_HASH_TAG: current}, current)
    assert not stale_report({}, current)  # registered before versions kept their report: left alone
