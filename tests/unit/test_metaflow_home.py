"""recops's Metaflow extension: Metaflow's local datastore is RECOPS_HOME's, and a user name is
found, however Metaflow is imported (a flow started directly, the Client one-liner, `card get`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

READ_CONFIG = (
    "import json; from metaflow import metaflow_config as c; "
    "from metaflow.plugins.datastores.local_storage import LocalStorage; "
    "from metaflow.plugins.cards.card_datastore import CardDatastore; "
    "from metaflow.util import get_username; "
    "print(json.dumps({'root': LocalStorage.get_datastore_root_from_config(print, False), "
    "'cards': CardDatastore.get_storage_root('local'), 'include_files': c.DATATOOLS_LOCALROOT, "
    "'user': get_username()}))"
)
USER_VARIABLES = ("SUDO_USER", "USERNAME", "USER", "LOGNAME", "METAFLOW_USER")


def metaflow_sees(cwd: Path, **env: str) -> dict[str, str]:
    """What a fresh `import metaflow` resolves, run in ``cwd`` with only ``env`` set of the
    variables that matter (a plain shell: no `make`, no recops import)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("METAFLOW_") and k not in USER_VARIABLES and k != "RECOPS_HOME"
    }
    clean["METAFLOW_HOME"] = str(cwd / "no-metaflowconfig")  # no ~/.metaflowconfig of the developer
    done = subprocess.run(
        [sys.executable, "-c", READ_CONFIG], cwd=cwd, env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_datastore_is_recops_home_wherever_the_command_runs(tmp_path):
    home = tmp_path / "elsewhere" / "home"
    (tmp_path / "somewhere").mkdir()
    (tmp_path / "somewhere" / ".metaflow").mkdir()  # what Metaflow alone would pick up
    seen = metaflow_sees(tmp_path / "somewhere", RECOPS_HOME=str(home), USERNAME="ana")
    assert seen["root"] == str(home / ".metaflow")
    # where the Client reads them (<the task's root>/mf.cards), not ./.metaflow/mf.cards
    assert seen["cards"] == str(home / ".metaflow" / "mf.cards")
    assert not (tmp_path / "somewhere" / ".metaflow" / "mf.cards").exists()
    assert seen["include_files"] == str(home / ".metaflow" / "data")  # not recops's data cache


def test_the_default_home_is_dot_recops_in_the_working_directory(tmp_path):
    seen = metaflow_sees(tmp_path, USERNAME="ana")
    assert seen["root"] == str(tmp_path / ".recops" / ".metaflow")  # as recops.paths.recops_home()


def test_metaflows_own_setting_wins(tmp_path):
    seen = metaflow_sees(
        tmp_path, RECOPS_HOME=str(tmp_path / "home"), METAFLOW_DATASTORE_SYSROOT_LOCAL=str(tmp_path / "mine")
    )
    assert seen["root"] == str(tmp_path / "mine" / ".metaflow")
    assert seen["cards"] == str(tmp_path / "mine" / ".metaflow" / "mf.cards")


@pytest.mark.parametrize(
    ("env", "user"),
    [
        ({}, "recops"),  # no user variable at all (a container, CI)
        ({"USER": "root"}, "recops"),  # Metaflow refuses root
        ({"USER": "root", "LOGNAME": "ana"}, "ana"),
        ({"USERNAME": "ana", "USER": "bo"}, "ana"),  # Metaflow's own order
        ({"METAFLOW_USER": "cy", "USERNAME": "ana"}, "cy"),
    ],
)
def test_a_user_name_is_always_found(tmp_path, env, user):
    assert metaflow_sees(tmp_path, **env)["user"] == user
