"""The registry behind MLflow's basic-auth app, as production runs it: infra/docker/mlflow/serve.py
starts `mlflow server --app-name basic-auth` on a PostgreSQL database that wants a password, with
artifacts in S3 (the AWS emulator). recops registers with credentials, and without them gets one
clear error; no password is on any process's command line.
"""

import secrets
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from recops import registry
from recops.cli.registry import registry_app
from recops.registry import CHALLENGER, CredentialsRefusedError
from tests.emulator import emulator
from tests.helpers import prepared, register, require_tool, untrained_report
from tests.integration import pg_mlflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "recops-mlflow-artifacts"
ADMIN = "recops-admin"
ADMIN_PASSWORD = "admin-" + secrets.token_urlsafe(18)
DB_PASSWORD = "db-" + secrets.token_urlsafe(18)
READER, READER_PASSWORD = "reader", "reader-" + secrets.token_urlsafe(18)
REFUSED = r"the MLflow server at http://127\.0\.0\.1:\d+ refused the credentials"
REMEDY = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"


@pytest.fixture(scope="module")
def aws():
    with emulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def server(aws, tmp_path_factory):
    bin_dir = pg_mlflow.postgres_bin_dir()
    require_tool(
        bin_dir is not None, "PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql/*/bin"
    )
    try:
        import flask_wtf  # noqa: F401
    except ImportError:
        require_tool(
            False, "MLflow's basic-auth app needs its `auth` extra (Flask-WTF): pip install 'mlflow[auth]'"
        )
    destination = aws.bucket(BUCKET) + "/artifacts"
    with (
        pg_mlflow.postgres_database(bin_dir, password=DB_PASSWORD) as database,
        pg_mlflow.mlflow_server(
            database,
            tmp_path_factory.mktemp("mlflow-auth"),
            auth=(ADMIN, ADMIN_PASSWORD),
            artifacts_destination=destination,
            env={**aws.env(), "MLFLOW_DB_PASSWORD": DB_PASSWORD},
        ) as running,
    ):
        yield running


@pytest.fixture(autouse=True)
def client_env(server, monkeypatch):
    """Every test talks to the server; credentials are each test's to set."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a dead server fails fast
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def as_user(monkeypatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


@pytest.fixture(scope="module")
def data():
    return prepared()


@pytest.fixture(scope="module")
def report(data):
    return untrained_report(data)


def test_registering_with_credentials_puts_the_model_in_the_emulated_bucket(
    server, aws, data, report, monkeypatch
):
    as_user(monkeypatch, ADMIN, ADMIN_PASSWORD)
    version = register(report, data)
    assert version.aliases == (CHALLENGER,)
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(key.startswith("artifacts/") and key.endswith("/checkpoint.pt") for key in keys), keys
    checkpoint, info = registry.load_checkpoint(version.version)  # back through the proxy
    assert info.version == version.version and checkpoint.model_name == report.checkpoint.model_name


@pytest.mark.parametrize(
    "credentials",
    [None, (ADMIN, "not-the-password"), ("nobody", "whatever")],
    ids=["none", "wrong", "unknown"],
)
def test_refused_credentials_are_one_clear_error(credentials, data, report, monkeypatch):
    if credentials is not None:
        as_user(monkeypatch, *credentials)
    with pytest.raises(CredentialsRefusedError, match=REFUSED) as listing:
        registry.list_versions()
    assert REMEDY in str(listing.value) and "HTTP 401" in str(listing.value)
    who = "MLFLOW_TRACKING_USERNAME is not set" if credentials is None else f"user {credentials[0]!r}"
    assert who in str(listing.value)
    with pytest.raises(CredentialsRefusedError, match=REFUSED) as registering:
        register(report, data)
    assert REMEDY in str(registering.value)

    result = CliRunner().invoke(registry_app, ["list"])
    assert result.exit_code == 2, result.output
    assert (
        result.stderr.startswith("error: the MLflow server at http://127.0.0.1:") and REMEDY in result.stderr
    )
    assert "Traceback" not in result.output + result.stderr


def test_a_new_user_reads_the_registry_but_cannot_move_an_alias(data, report, monkeypatch, server):
    """default_permission = READ (serve.py): reading is allowed, an alias move is a 403."""
    as_user(monkeypatch, ADMIN, ADMIN_PASSWORD)
    version = register(report, data)
    created = httpx.post(  # what mlflow.server.auth.client.AuthServiceClient.create_user sends
        f"{server.url}/api/2.0/mlflow/users/create",
        json={"username": READER, "password": READER_PASSWORD},
        auth=(ADMIN, ADMIN_PASSWORD),
        timeout=30,
    )
    assert created.status_code == 200, created.text

    as_user(monkeypatch, READER, READER_PASSWORD)
    assert version.version in {v.version for v in registry.list_versions()}
    with pytest.raises(CredentialsRefusedError, match=REFUSED) as moving:
        registry.set_alias("candidate", version.version)
    message = str(moving.value)
    assert "user 'reader'" in message and "HTTP 403" in message and "EDIT permission" in message


def _process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_no_password_is_on_a_command_line(server):
    tree = _process_tree(server.pid)
    lines = [_cmdline(pid) for pid in tree]
    assert any("mlflow" in line and "server" in line for line in lines), lines
    assert len(tree) >= 2, lines  # the server and its uvicorn worker(s)
    everyone = [_cmdline(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()]
    for password in (ADMIN_PASSWORD, DB_PASSWORD):
        assert not [line for line in everyone if password in line]
    assert all("postgresql" not in line for line in lines)  # the URI goes through the environment
    entries = Path(f"/proc/{server.pid}/environ").read_bytes().decode().split("\0")
    environ = dict(entry.split("=", 1) for entry in entries if "=" in entry)
    assert environ["PGPASSWORD"] == DB_PASSWORD  # where the database password goes instead
    config = Path(environ["MLFLOW_AUTH_CONFIG_PATH"])
    assert config.stat().st_mode & 0o777 == 0o600
    assert "default_permission = READ" in config.read_text()
    assert ADMIN_PASSWORD not in config.read_text() and DB_PASSWORD not in config.read_text()
