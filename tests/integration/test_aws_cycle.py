"""The production cycle on AWS, end to end against the AWS emulator, with real processes.

What runs for real: moto's server on 127.0.0.1 standing in for S3, ECR, ECS, Secrets Manager
and IAM; ``mlflow server`` on PostgreSQL with MLflow's basic-auth app on and artifacts in the
emulated S3 (started the way infra/docker/mlflow/serve.py starts it on ECS); Metaflow with its
S3 datastore in the emulator (local compute: Batch jobs cannot run here, see
test_batch_placement.py for where they would); ``recops retrain`` and ``recops registry
rollback`` as child processes with the environment Terraform's ``client_environment`` gives a
flow run (``RECOPS_STORE=s3://…``, ``RECOPS_DEPLOY_BACKEND=ecs``, the MLflow credentials from
Secrets Manager); the bento served by ``bentoml serve`` with the API token from Secrets Manager.

The journey: events land under ``s3://…/incoming/`` → a cycle snapshots them in S3, trains,
gates and sets the ECS service to a task definition naming the champion's image (CI pushed
the images; the emulator stores their manifests) → new events, a second cycle, a new revision →
``recops registry rollback`` → the service back on the earlier revision. The emulator starts
no containers: ``MOTO_ECS_SERVICE_RUNNING`` is its stand-in for healthy tasks.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys

import httpx
import pandas as pd
import pytest

from recops.config import load_config
from recops.data import load_events, validate_events
from recops.data.synthetic import new_events_like
from recops.localproc import free_port, http_ok, start_server
from tests.emulator import ecs_service, emulator, push_image
from tests.helpers import TINY_CONFIG, require_tool
from tests.integration.pg_mlflow import mlflow_server, postgres_bin_dir, postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORE = "s3://recops-state/recops"
# Most-popular (trained in a blink) and a gate that promotes any retrain: what is under test is
# where the state goes and what the service runs, not the model.
CONFIG = TINY_CONFIG.replace("[gate]\n", "[gate]\nmargin = 1.0\n") + (
    '\n[retrain]\nmodel = "popular"\ndeploy_timeout_s = 30.0\n'
)


def secret(emu, name: str) -> str:
    return emu.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"]


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """The emulator, PostgreSQL + authenticated MLflow, the ECS service, and the environment a
    flow run gets; yields (emulator, ecs service, env)."""
    bin_dir = postgres_bin_dir()
    require_tool(bin_dir is not None, "PostgreSQL binaries (initdb, pg_ctl) are not installed")
    work = tmp_path_factory.mktemp("aws-cycle")
    with pytest.MonkeyPatch.context() as patch, emulator() as emu:
        patch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")  # read by the emulator, in this process
        for bucket in ("recops-state", "recops-mlflow", "recops-metaflow"):
            emu.bucket(bucket)
        sm = emu.client("secretsmanager")  # what Terraform's generated secrets hold
        sm.create_secret(Name="recops/api-token", SecretString=secrets.token_urlsafe(24))
        admin = {"username": "recops-admin", "password": secrets.token_urlsafe(16)}
        sm.create_secret(Name="recops/mlflow-admin", SecretString=json.dumps(admin))
        service = ecs_service(emu, first_image_tag="bootstrap")
        for version in ("v1", "v2"):  # CI built and pushed each registered version's image
            push_image(emu, service.repository, version)
        creds = json.loads(secret(emu, "recops/mlflow-admin"))
        with (
            postgres_database(bin_dir) as backend_uri,
            mlflow_server(
                backend_uri,
                work / "mlflow",
                auth=(creds["username"], creds["password"]),
                artifacts_destination="s3://recops-mlflow/artifacts",
                env=emu.env(),
            ) as server,
        ):
            env = {
                **os.environ,
                **emu.env(),
                **service.env(),
                "RECOPS_STORE": STORE,
                "RECOPS_HOME": str(work / "home"),  # what stays local: Prefect's temporary API, the lock
                "BENTOML_HOME": str(work / "home" / "bentoml"),
                "MLFLOW_TRACKING_URI": server.url,
                "MLFLOW_TRACKING_USERNAME": creds["username"],
                "MLFLOW_TRACKING_PASSWORD": creds["password"],
                "METAFLOW_DEFAULT_DATASTORE": "s3",
                "METAFLOW_DATASTORE_SYSROOT_S3": "s3://recops-metaflow/metaflow",
                "METAFLOW_DEFAULT_METADATA": "local",
                "BENTOML_DO_NOT_TRACK": "True",
                "MLFLOW_DISABLE_TELEMETRY": "true",
            }
            for name in ("PREFECT_API_URL", "METAFLOW_DATASTORE_SYSROOT_LOCAL", "METAFLOW_BATCH_JOB_QUEUE"):
                env.pop(name, None)
            (work / "config.toml").write_text(CONFIG)
            env["RECOPS_TEST_CONFIG"] = str(work / "config.toml")
            yield emu, service, env


def recops(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "recops.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"recops {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def put_events(emu, name: str, config: str, earlier: list[pd.DataFrame]) -> pd.DataFrame:
    """A producer drops new sessions (timed after every earlier event) into the incoming prefix."""
    base = load_events("synthetic", load_config(config).data)
    events = new_events_like(pd.concat([base, *earlier], ignore_index=True), 120, seed=len(earlier) + 1)
    body = events.to_csv(index=False).encode()
    emu.client("s3").put_object(Bucket="recops-state", Key=f"recops/incoming/{name}", Body=body)
    return validate_events(events, source=name)  # as the cycle reads it, for the next file


def keys(emu, prefix: str) -> list[str]:
    found = emu.client("s3").list_objects_v2(Bucket="recops-state", Prefix=f"recops/{prefix}")
    return sorted(o["Key"].removeprefix("recops/") for o in found.get("Contents", []))


def service_state(emu, service) -> tuple[int, str]:
    """(revision, image) of the task definition the ECS service is set to."""
    ecs = emu.client("ecs")
    arn = ecs.describe_services(cluster=service.cluster, services=[service.service])["services"][0][
        "taskDefinition"
    ]
    definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return definition["revision"], definition["containerDefinitions"][0]["image"]


def status(env) -> dict:
    return json.loads(recops(env, "status", "--json"))


def champion(env) -> int:
    return status(env)["champion"]["version"]


def test_a_cycle_on_s3_deploys_to_ecs_and_a_rollback_returns_the_service(aws, tmp_path):
    emu, service, env = aws
    config = env["RECOPS_TEST_CONFIG"]
    assert service_state(emu, service)[0] == 1  # the bootstrap image Terraform started with

    # 1. events land in the store's incoming prefix; the cycle snapshots, trains, gates, deploys
    dropped = [put_events(emu, "0001.csv", config, [])]
    first = json.loads(recops(env, "retrain", "--dataset", "synthetic", "--config", config, "--json"))
    assert first["outcome"] == "retrained, promoted", first
    assert "incoming/manifest.json" in keys(emu, "incoming/")
    manifest = json.loads(
        emu.client("s3").get_object(Bucket="recops-state", Key="recops/incoming/manifest.json")["Body"].read()
    )
    assert [f["name"] for f in manifest["files"]] == ["0001.csv"]
    assert manifest["snapshot"].startswith(f"{STORE}/snapshots/")
    assert len(keys(emu, "snapshots/")) == 1
    assert champion(env) == 1
    revision, image = service_state(emu, service)
    assert (revision, image.rsplit(":", 1)[1]) == (2, "v1")
    # the checkpoint went to the emulated S3 through the authenticated MLflow server
    artifacts = emu.client("s3").list_objects_v2(Bucket="recops-mlflow").get("Contents", [])
    assert any(o["Key"].endswith("checkpoint.pt") for o in artifacts), [o["Key"] for o in artifacts]
    # the Metaflow run's artifacts are in the S3 datastore, not on the local disk
    flows = emu.client("s3").list_objects_v2(
        Bucket="recops-metaflow", Prefix="metaflow/TrainRecommenderFlow/"
    )
    assert flows.get("KeyCount", 0) > 0

    # 2. new events, a second cycle, a second revision
    dropped.append(put_events(emu, "0002.csv", config, dropped))
    second = json.loads(recops(env, "retrain", "--dataset", "synthetic", "--config", config, "--json"))
    assert second["outcome"] == "retrained, promoted", second
    assert champion(env) == 2
    assert len(keys(emu, "snapshots/")) == 2
    revision, image = service_state(emu, service)
    assert (revision, image.rsplit(":", 1)[1]) == (3, "v2")
    now = status(env)
    assert now["serving"]["in_sync"] is True, now
    assert now["serving"]["services"][0]["target"] == f"ecs://{service.cluster}/{service.service}"
    assert now["last_cycle"]["outcome"] == "retrained, promoted"  # read from the S3 store

    # 3. rollback: champion back to 1, the service back on revision 2 (no new revision)
    recops(env, "registry", "rollback")
    assert champion(env) == 1
    assert service_state(emu, service)[0] == 2
    ecs = emu.client("ecs")
    assert len(ecs.list_task_definitions(familyPrefix=service.service)["taskDefinitionArns"]) == 3
    records = keys(emu, "serving/deployments/")
    assert [k.rsplit("-", 1)[1] for k in records] == ["v1.json", "v2.json", "v1.json"]

    # 4. the champion's bento, served with the API token from Secrets Manager
    token = secret(emu, "recops/api-token")
    bento = recops(env, "bento", "build", "--alias", "champion").strip().splitlines()[-1]
    port = free_port()
    serve_env = {**env, "RECOPS_API_TOKEN": token, "RECOPS_API_TOKEN_REQUIRED": "1"}
    command = [sys.executable, "-m", "recops.cli.main", "serve", bento, "--port", str(port)]
    # `recops serve` stops its bentoml server on Ctrl-C (SIGINT); SIGTERM would orphan it
    stop = ((signal.SIGINT, 30.0), (signal.SIGKILL, 5.0))
    log = tmp_path / "serve.log"
    with start_server("bento", command, env=serve_env, log_path=log, stop_steps=stop) as server:
        url = f"http://127.0.0.1:{port}"
        server.wait_ready(lambda: http_ok(f"{url}/readyz"), timeout=180)
        body = {"session": [101, 102], "k": 3}
        assert httpx.post(f"{url}/recommend", json=body, timeout=30).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert httpx.post(f"{url}/recommend", json=body, headers=wrong, timeout=30).status_code == 401
        right = {"Authorization": f"Bearer {token}"}
        answer = httpx.post(f"{url}/recommend", json=body, headers=right, timeout=30)
        assert answer.status_code == 200, answer.text
        assert str(answer.json()["model"]["version"]) == "1"
    assert token not in log.read_text()  # never logged

    # 5. the step cache on the S3 datastore: its index is in the bucket, and a forced cycle on
    # the second cycle's events (warm-starting from the same champion, version 1, again) reuses
    # every step before register from the second cycle's run
    index = emu.client("s3").list_objects_v2(
        Bucket="recops-metaflow", Prefix="metaflow/TrainRecommenderFlow/_recops_step_cache/train/"
    )
    assert index.get("KeyCount", 0) >= 2, index  # one entry per trained model
    push_image(emu, service.repository, "v3")  # CI builds the image of the version it will register
    forced = json.loads(
        recops(env, "retrain", "--dataset", "synthetic", "--config", config, "--force", "--json")
    )
    assert forced["trained"]["step_cache"]["hits"] == ["evaluate", "split", "train", "validate"], forced
    assert forced["outcome"] == "retrained, promoted" and champion(env) == 3
