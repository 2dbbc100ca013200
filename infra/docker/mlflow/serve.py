"""Start `mlflow server` from the environment that the ECS task definition sets.

The database password comes from Secrets Manager (generated and rotated by RDS) and may hold
characters that a URI reserves, so it is quoted here rather than pasted into a shell command.
"""

import os
from urllib.parse import quote

env = os.environ
backend = "postgresql://{user}:{password}@{host}:{port}/{name}?sslmode=require".format(
    user=quote(env["MLFLOW_DB_USER"], safe=""),
    password=quote(env["MLFLOW_DB_PASSWORD"], safe=""),
    host=env["MLFLOW_DB_HOST"],
    port=env.get("MLFLOW_DB_PORT", "5432"),
    name=env.get("MLFLOW_DB_NAME", "mlflow"),
)
options = {
    "--host": "0.0.0.0",
    "--port": env.get("MLFLOW_PORT", "5000"),
    "--workers": env.get("MLFLOW_SERVER_WORKERS", "2"),
    "--backend-store-uri": backend,
    "--artifacts-destination": env["MLFLOW_ARTIFACTS"],
    "--allowed-hosts": env["MLFLOW_ALLOWED_HOSTS"],
}
args = ["mlflow", "server", "--serve-artifacts", *(part for pair in options.items() for part in pair)]
os.execvp(args[0], args)
