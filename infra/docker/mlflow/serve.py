"""Start `mlflow server` with MLflow's basic-auth app, from the environment that the ECS task
definition sets (tests/integration/pg_mlflow.py runs this file the same way).

Nothing secret goes on the command line, which `ps` and /proc show to anyone on the host:

- The database password (``MLFLOW_DB_PASSWORD``, from Secrets Manager, generated and rotated
  by RDS) reaches libpq as ``PGPASSWORD``. The backend store URI holds user, host and database
  only, and goes through ``MLFLOW_BACKEND_STORE_URI``, the variable `mlflow server
  --backend-store-uri` reads.
- The auth app's settings go to a file (``MLFLOW_AUTH_CONFIG_PATH``, written here; a private
  temporary file unless that variable names one) with nothing secret in it: the auth database
  is the same PostgreSQL database (the auth tables ``users``, ``roles``, ``*_permissions`` and
  their ``alembic_version_auth`` do not clash with the tracking schema), reached with the same
  ``PGPASSWORD``. The admin account comes from ``MLFLOW_AUTH_ADMIN_USERNAME`` /
  ``MLFLOW_AUTH_ADMIN_PASSWORD``, which MLflow reads from the environment itself. MLflow creates
  that user on the first start only: a changed password afterwards must go through MLflow's
  update-password API (or ``mlflow.server.auth.client``), a restart does not apply it.
- The auth app's CSRF key (``MLFLOW_FLASK_SERVER_SECRET_KEY``, the same in every task and
  worker): from the environment when set, else derived from the admin password.

``default_permission = READ``: a user an admin creates reads every experiment and model but
cannot register versions, move aliases (``champion``, ``challenger``) or delete anything until
an admin grants it EDIT or MANAGE on the registered model (MLflow checks "update" permission for
an alias move, which READ does not have). The accounts that train and promote get EDIT on
``session-recommender`` and the ``recops`` experiment; everyone else reads.

Environment: MLFLOW_DB_USER, MLFLOW_DB_PASSWORD, MLFLOW_DB_HOST, MLFLOW_DB_PORT [5432],
MLFLOW_DB_NAME [mlflow], MLFLOW_DB_SSLMODE [require], MLFLOW_ARTIFACTS (the artifact store,
e.g. s3://bucket/artifacts), MLFLOW_ALLOWED_HOSTS, MLFLOW_HOST [0.0.0.0], MLFLOW_PORT [5000],
MLFLOW_SERVER_WORKERS [2], MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

DEFAULT_PERMISSION = "READ"
REQUIRED = (
    "MLFLOW_DB_USER",
    "MLFLOW_DB_PASSWORD",
    "MLFLOW_DB_HOST",
    "MLFLOW_ARTIFACTS",
    "MLFLOW_ALLOWED_HOSTS",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
)
SECRET_KEY_LABEL = b"recops mlflow flask secret key"


def backend_store_uri(env: Mapping[str, str]) -> str:
    """The SQLAlchemy URI of the database, without its password (libpq reads PGPASSWORD).
    The driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the image
    does not have."""
    return "postgresql+psycopg2://{user}@{host}:{port}/{name}?sslmode={sslmode}".format(
        user=quote(env["MLFLOW_DB_USER"], safe=""),
        host=env["MLFLOW_DB_HOST"],
        port=env.get("MLFLOW_DB_PORT", "5432"),
        name=quote(env.get("MLFLOW_DB_NAME", "mlflow"), safe=""),
        sslmode=env.get("MLFLOW_DB_SSLMODE", "require"),
    )


def auth_config(database_uri: str, admin_username: str) -> str:
    """The basic-auth app's config file (mlflow/server/auth/basic_auth.ini's keys); no password."""
    return (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"  # configparser interpolates '%'
        f"admin_username = {admin_username}\n"
        "# admin_password: MLflow reads MLFLOW_AUTH_ADMIN_PASSWORD from the environment\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def server_command(env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The `mlflow server` command line and its environment; writes the auth config file."""
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SystemExit(f"serve.py: not set in the environment: {', '.join(missing)}")
    uri = backend_store_uri(env)
    config = Path(
        env.get("MLFLOW_AUTH_CONFIG_PATH") or Path(tempfile.mkdtemp(prefix="mlflow-auth-")) / "auth.ini"
    )
    _write_private(config, auth_config(uri, env["MLFLOW_AUTH_ADMIN_USERNAME"]))
    secret_key = (
        env.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
        or hmac.new(env["MLFLOW_AUTH_ADMIN_PASSWORD"].encode(), SECRET_KEY_LABEL, hashlib.sha256).hexdigest()
    )
    child_env = {
        **env,
        "PGPASSWORD": env["MLFLOW_DB_PASSWORD"],
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key,
    }
    options = {
        "--app-name": "basic-auth",
        "--host": env.get("MLFLOW_HOST", "0.0.0.0"),
        "--port": env.get("MLFLOW_PORT", "5000"),
        "--workers": env.get("MLFLOW_SERVER_WORKERS", "2"),
        "--artifacts-destination": env["MLFLOW_ARTIFACTS"],
        "--allowed-hosts": env["MLFLOW_ALLOWED_HOSTS"],
    }
    args = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts"]
    return [*args, *(part for pair in options.items() for part in pair)], child_env


def main() -> None:
    args, env = server_command(os.environ)
    os.execve(args[0], args, env)


if __name__ == "__main__":
    main()
