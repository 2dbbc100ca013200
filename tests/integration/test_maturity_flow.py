"""The Prefect flow `maturity-report` against a real Prefect API, in a fresh RECOPS_HOME.

A fresh home has no model, no run and no cycle: Google's level 0. The flow must complete, return
that score, and publish it as the markdown artifact `maturity-report` (read back from the API),
having read the Prefect facts from inside its own run: through the API it reports to (the test
harness's server), or, with no PREFECT_API_URL, through the one temporary server of its process,
neither starting a second server nor waiting on one. With require_level above the system's
level the run fails, saying so, after publishing the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from recops.paths import use_local_prefect_home

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACT_KEY = "maturity-report"  # maturity_flow.ARTIFACT_KEY; the module is imported after Prefect's home
LEVEL_0 = "## Google's MLOps maturity: level 0"


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """The test harness's Prefect server (PREFECT_API_URL set for the module), state in a temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("maturity-prefect")))
        use_local_prefect_home()
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield


def artifacts_of(flow_run_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )


def test_the_flow_publishes_a_fresh_homes_level_0_as_a_markdown_artifact(prefect_api):
    from recops.continuous.maturity_flow import ARTIFACT_KEY as KEY
    from recops.continuous.maturity_flow import maturity_report

    assert KEY == ARTIFACT_KEY
    state = maturity_report(return_state=True)
    assert state.is_completed(), state.message

    result = state.result()
    assert result["google"]["level"] == 0
    assert not all(item["passed"] for item in result["google"]["items"])
    # the Prefect facts were read through the harness's API from inside the run: no note of failing
    assert "prefect" not in result["notes"], result["notes"]

    [artifact] = artifacts_of(state.state_details.flow_run_id)
    assert artifact.type == "markdown"
    assert LEVEL_0 in artifact.data, artifact.data
    assert artifact.description == "recops MLOps maturity: Google level 0, Microsoft level 1, ML Test Score 0"
    assert "## ML Test Score: 0 (more of a research project" in artifact.data


def test_a_level_above_the_systems_fails_the_run_after_publishing_the_report(prefect_api):
    from recops.continuous.maturity_flow import maturity_report

    state = maturity_report(require_level=1, return_state=True)
    assert state.is_failed()
    assert "level 0, below the required level 1" in state.message, state.message
    [artifact] = artifacts_of(state.state_details.flow_run_id)
    assert LEVEL_0 in artifact.data


RUN_ON_THE_TEMPORARY_API = textwrap.dedent(
    """
    import json

    import psutil

    from recops.paths import REPO_ROOT, use_local_prefect_home

    use_local_prefect_home()
    from prefect import get_client
    from prefect.flows import load_flow_from_entrypoint
    from prefect.server.api.server import SubprocessASGIServer

    from recops.continuous.schedules import load_deployments

    # as a deployment's run loads it: the file of prefect.yaml's entrypoint, run as a script
    [spec] = [s for s in load_deployments(REPO_ROOT / "prefect.yaml") if s.name == "weekly-maturity-report"]
    maturity_report = load_flow_from_entrypoint(spec.entrypoint_path)
    state = maturity_report(return_state=True)
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()[0]
    servers = [
        " ".join(child.cmdline())
        for child in psutil.Process().children(recursive=True)
        if "uvicorn" in child.cmdline()
    ]
    print(json.dumps({
        "state": state.type.value,
        "message": state.message,
        "result": state.result() if state.is_completed() else None,
        "artifact": [artifact.key, artifact.data],
        "instances": [str(key) for key, server in SubprocessASGIServer._instances.items() if server.running],
        "servers": servers,
    }))
    """
)


def test_on_the_temporary_api_the_run_reads_prefect_through_its_own_server(tmp_path):
    """No PREFECT_API_URL: Prefect starts one temporary server for the run, and the facts are read
    through it; a second server, or a wait on one, would show here (the timeout is the deadlock).
    The flow is loaded from prefect.yaml's entrypoint, as a deployment's run loads it (the
    script's folder first on sys.path), not imported as a module."""
    home = tmp_path / "recops-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(RECOPS_HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-c", RUN_ON_THE_TEMPORARY_API],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["state"] == "COMPLETED", seen["message"]
    assert seen["result"]["google"]["level"] == 0
    assert "prefect" not in seen["result"]["notes"], seen["result"]["notes"]
    assert seen["artifact"][0] == ARTIFACT_KEY and LEVEL_0 in seen["artifact"][1]
    assert seen["instances"] == ["None"], seen  # Prefect's one temporary server of the process
    assert len(seen["servers"]) == 1, seen["servers"]
    assert (home / "prefect" / "prefect.db").is_file()  # its history under RECOPS_HOME
