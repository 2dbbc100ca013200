"""The Prefect flow ``maturity-report``: `recops maturity` on a schedule, published as an artifact.

Deployed weekly (``weekly-maturity-report`` in prefect.yaml and prefect.ecs.yaml), it reads the
live system's facts (:func:`recops.cicd.maturity.read_facts`), scores them and publishes the
markdown as the artifact ``maturity-report``: every run adds a version under that key, so the
Prefect UI shows this week's level and the weeks before it. The flow returns the score as a dict.

It lives here, beside ``retrain``: a flow run keeps its entrypoint's folder first on
``sys.path``, so no module beside a flow may be named as an installed package (a ``google.py``
would hide the ``google`` of mlflow's protobuf; ``recops schedule check`` names such modules).

Inside a flow run the Prefect facts come from the API the run itself reports to: the server's
(``PREFECT_API_URL``, set for every run that a worker or `recops schedule serve` starts), or,
for a run on Prefect's temporary API, the same temporary server, which Prefect starts once per
process (``SubprocessASGIServer`` is one per process), never a second one over the same database.

The flow writes one thing, the artifact, in one API call: a crash before it leaves nothing (the
key's latest version stays last week's report), a crash after it leaves the report published.
Reading the facts changes nothing, so a failed run is simply run again.

Call :func:`recops.paths.use_local_prefect_home` before importing this module (the ``recops``
command and `recops schedule serve` do), so the embedded default keeps Prefect's state under
``RECOPS_HOME``.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from recops.cicd.maturity import read_facts, render, score
from recops.errors import ErrorsOnOneLine, RecopsError

ARTIFACT_KEY = "maturity-report"

# A run that fails on its own finding (below require_level) is one line in the run's log, as in
# recops.continuous.flow, not Prefect's traceback; a bug keeps its traceback.
ErrorsOnOneLine.install("prefect.flow_runs", "prefect.task_runs")


class BelowRequiredLevelError(RecopsError):
    """The system scores below the level a deployment requires of it."""


@flow(name="maturity-report", log_prints=True)
def maturity_report(
    require_level: Annotated[int | None, Field(ge=0, le=2)] = None,
) -> dict[str, Any]:
    """Score the live system from its own metadata (Google's levels 0-2, Microsoft's levels 0-4,
    the ML Test Score), publish the markdown as the artifact ``maturity-report``, and return the
    score. With ``require_level`` (Google's) the run fails below that level, after publishing,
    so that `recops schedule status` warns of the regression and the report says what failed."""
    logger = get_run_logger()
    result = score(read_facts())
    summary = (
        f"recops MLOps maturity: Google level {result.level}, Microsoft level {result.microsoft.level}, "
        f"ML Test Score {result.ml_tests.score:g}"
    )
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=render(result),
        description=summary,
    )
    logger.info("%s (artifact %s)", summary, ARTIFACT_KEY)
    if require_level is not None and result.level < require_level:
        raise BelowRequiredLevelError(
            f"the system is at Google's MLOps maturity level {result.level}, below the required "
            f"level {require_level} (parameter require_level); the failing characteristics are in "
            f"the artifact {ARTIFACT_KEY!r}"
        )
    return result.to_dict()
