"""A throwaway PostgreSQL cluster and an ``mlflow server`` on it, from the installed binaries.

The at-scale registry of DESIGN.md (``mlflow server`` on PostgreSQL) on one machine: ``initdb``
into a temporary folder, ``pg_ctl start`` on 127.0.0.1 with trust authentication, a database,
then ``mlflow server`` with proxied artifacts on a free port. Everything is stopped and removed
on exit, including after a failure.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recops.localproc import free_port, http_ok, start_server

SERVER_START_TIMEOUT_S = 90.0  # schema migrations on a fresh database take a while on 2 busy cores
POSTGRES_USER = "postgres"  # database superuser name (initdb -U)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path
    backend_uri: str


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
def postgres_database(bin_dir: Path, database: str = "mlflow") -> Iterator[str]:
    """A running cluster with ``database`` created; yields its SQLAlchemy URI."""
    user = _os_user()
    root = Path(tempfile.mkdtemp(prefix="recops-pg-"))  # not under pytest's root-only tmp dir
    data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
    sockets.mkdir()
    if user:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8"],
            user,
        )
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
            psycopg2.connect(host="127.0.0.1", port=port, user=POSTGRES_USER, dbname="postgres")
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
def mlflow_server(backend_uri: str, workdir: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on ``backend_uri`` with artifacts proxied to ``workdir/artifacts``."""
    port = free_port()
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job consumers to start
        "MLFLOW_DISABLE_TELEMETRY": "true",  # no network here
    }
    steps = ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0))
    with start_server(
        "mlflow server", cmd, env=env, cwd=workdir, log_path=log_path, stop_steps=steps
    ) as server:
        server.wait_ready(lambda: http_ok(f"{url}/health"), SERVER_START_TIMEOUT_S)
        yield MlflowServer(url, artifacts, backend_uri)
