"""A throwaway PostgreSQL cluster and an ``mlflow server`` on it, from the installed binaries.

The at-scale registry of DESIGN.md (``mlflow server`` on PostgreSQL) on one machine: ``initdb``
into a temporary folder, ``pg_ctl start`` on 127.0.0.1 (trust authentication, or a password),
a database, then ``mlflow server`` with proxied artifacts on a free port. Everything is stopped
and removed on exit, including after a failure.

- ``postgres_database(bin_dir, database="mlflow", password=None)`` yields the database's
  SQLAlchemy URI. With ``password`` the superuser has it and TCP connections must give it
  (scram-sha-256); the URI holds none (a client gives it as ``PGPASSWORD``).
- ``mlflow_server(backend_uri, workdir, *, auth=None, artifacts_destination=None, env=None)``
  yields an :class:`MlflowServer`. Artifacts go to ``workdir/artifacts``, or to
  ``artifacts_destination`` (``s3://...`` with the AWS emulator's ``env()`` in ``env``).
  ``auth=(user, password)`` starts MLflow's basic-auth app by running
  infra/docker/mlflow/serve.py, the image's entry point, with the environment ECS gives it
  (``env`` may add ``MLFLOW_DB_PASSWORD``); ``user`` is the admin it creates.

No password is ever on a command line (``ps`` shows those to everyone): the backend store URI
goes through ``MLFLOW_BACKEND_STORE_URI``, passwords through the environment or a file.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from recops.localproc import free_port, http_ok, start_server

SERVER_START_TIMEOUT_S = 90.0  # schema migrations on a fresh database take a while on 2 busy cores
POSTGRES_USER = "postgres"  # database superuser name (initdb -U)
SERVE_PY = Path(__file__).resolve().parents[2] / "infra" / "docker" / "mlflow" / "serve.py"


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path | None  # the local artifact folder; None when they go to artifacts_destination
    backend_uri: str
    artifacts_destination: str = ""
    pid: int = 0  # the server process (its workers are its children)
    auth: tuple[str, str] | None = None  # the admin's user name and password


def postgres_bin_dir() -> Path | None:
    """Folder with initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    candidates = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates = [d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    return max(candidates, key=lambda d: int(d.parent.name), default=None) if candidates else None


def _os_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: under root, run it as an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists")


def _run(cmd: list[str], user: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess:
    ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **ids, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@contextlib.contextmanager
def postgres_database(bin_dir: Path, database: str = "mlflow", password: str | None = None) -> Iterator[str]:
    """A running cluster with ``database`` created; yields its SQLAlchemy URI (no password in
    it: with ``password``, connections over TCP must give it, e.g. as ``PGPASSWORD``)."""
    user = _os_user()
    root = Path(tempfile.mkdtemp(prefix="recops-pg-"))  # not under pytest's root-only tmp dir
    data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
    sockets.mkdir()
    if user:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    started = False
    auth = ["--auth=trust"]
    if password is not None:  # initdb reads it from a file: not on its command line
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if user:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER, *auth, "-E", "UTF8"], user)
        if password is not None:
            pwfile.unlink()
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
            ],
            user,
        )
        started = True
        import psycopg2

        with contextlib.closing(
            psycopg2.connect(
                host="127.0.0.1", port=port, user=POSTGRES_USER, dbname="postgres", password=password
            )
        ) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{database}"')
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; name the installed driver
        yield f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(
    backend_uri: str,
    workdir: Path,
    *,
    auth: tuple[str, str] | None = None,
    artifacts_destination: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[MlflowServer]:
    """``mlflow server`` on ``backend_uri`` with proxied artifacts (``workdir/artifacts``, or
    ``artifacts_destination``), on a free port of 127.0.0.1; ``env`` is added to its
    environment. With ``auth=(user, password)``: MLflow's basic-auth app as serve.py starts it,
    ``user`` its admin."""
    port = free_port()
    artifacts = None if artifacts_destination else workdir / "artifacts"
    if artifacts is not None:
        artifacts.mkdir(parents=True, exist_ok=True)
    destination = artifacts_destination or str(artifacts)
    workdir.mkdir(parents=True, exist_ok=True)
    base_env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job consumers to start
        "MLFLOW_DISABLE_TELEMETRY": "true",  # no network here
    }
    if auth is None:
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--artifacts-destination",
            destination,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        server_env = {**base_env, "MLFLOW_BACKEND_STORE_URI": backend_uri, **(env or {})}
    else:
        cmd = [sys.executable, str(SERVE_PY)]
        server_env = {
            **base_env,
            **_serve_py_env(backend_uri, auth, destination, port, workdir),
            **(env or {}),
        }
    url = f"http://127.0.0.1:{port}"
    steps = ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0))
    with start_server(
        "mlflow server",
        cmd,
        env=server_env,
        cwd=workdir,
        log_path=workdir / "mlflow-server.log",
        stop_steps=steps,
    ) as server:
        server.wait_ready(lambda: http_ok(f"{url}/health"), SERVER_START_TIMEOUT_S)
        yield MlflowServer(url, artifacts, backend_uri, destination, server.process.pid, auth)


def _serve_py_env(
    backend_uri: str, auth: tuple[str, str], destination: str, port: int, workdir: Path
) -> dict[str, str]:
    """What the ECS task definition sets for serve.py, for a server on 127.0.0.1:``port``."""
    from sqlalchemy.engine import make_url

    url = make_url(backend_uri)
    return {
        "MLFLOW_DB_USER": url.username or POSTGRES_USER,
        # serve.py requires one; with trust authentication (no password) it is never asked for
        "MLFLOW_DB_PASSWORD": url.password or "unused-with-trust-authentication",
        "MLFLOW_DB_HOST": url.host or "127.0.0.1",
        "MLFLOW_DB_PORT": str(url.port or 5432),
        "MLFLOW_DB_NAME": url.database or "mlflow",
        "MLFLOW_DB_SSLMODE": "disable",  # the throwaway cluster has no certificate
        "MLFLOW_ARTIFACTS": destination,
        "MLFLOW_ALLOWED_HOSTS": "127.0.0.1:*,localhost:*",
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_SERVER_WORKERS": "1",
        "MLFLOW_AUTH_ADMIN_USERNAME": auth[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": auth[1],
        "MLFLOW_AUTH_CONFIG_PATH": str(workdir / "auth.ini"),
    }
