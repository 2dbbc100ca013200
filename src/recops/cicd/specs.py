"""Offline checks of every deploy spec: the GitHub workflows, both Prefect files, the bentofile.

Each check returns the problems it found (empty: passed) and is one line of
``scripts/check_deploy_specs.py`` (``make check-deploy-specs``, CI's deploy-specs job; ``make
test`` runs the same checks). Nothing here reaches the network. What only a real GitHub run can
check is listed in :data:`NEEDS_GITHUB`.

- **actionlint** (syntax, expressions, contexts, job graph) and **zizmor** (security audits, the
  pedantic persona, ``--offline``) report nothing;
- every third-party action is pinned to a full commit SHA with its version in a comment;
- every workflow grants nothing at the top (``permissions: {}``) and every job names its own;
- no static AWS keys: AWS is reached through ``configure-aws-credentials`` with a role (OIDC);
- no logic lives only in YAML: each ``run:`` is a make target or ``.ci/run``, or puts a folder
  on ``$GITHUB_PATH``;
- ``prefect.yaml`` and ``prefect.ecs.yaml`` fit their flows' signatures (``recops schedule
  check``) and have the same deployments: entrypoints, schedules and parameters;
- the bentofile parses as BentoML's build config and names the service file it ships.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from recops.paths import REPO_ROOT

WORKFLOWS = Path(".github/workflows")
PREFECT_FILES = ("prefect.yaml", "prefect.ecs.yaml")
BENTOFILE = Path("bentos/session_recommender/bentofile.yaml")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
LOCAL = ("./", "$/")  # an action or reusable workflow of this repository
GLUE = re.compile(r'^echo "[^"$`]*" >> "\$GITHUB_PATH"$')  # a tool's folder onto PATH, nothing else
STATIC_KEYS = re.compile(r"aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY|AKIA[0-9A-Z]{16}")

# What passes here but only a run on GitHub (or the network) can confirm.
NEEDS_GITHUB = (
    "that each pinned SHA is a commit of the action's own repository, not of a fork (zizmor's "
    "impostor-commit audit, online), and that no pinned version has a known advisory "
    "(known-vulnerable-actions, online)",
    "that the OIDC token's sub claim matches the role's trust policy (repo:<owner>/<repo>:"
    "environment:<stack>, :pull_request): only an AssumeRoleWithWebIdentity from a real run",
    "environment protection (required reviewers on prod) and the repository/environment variables "
    "AWS_REGION, TF_STATE_BUCKET, AWS_DEPLOY_ROLE_ARN, AWS_PLAN_ROLE_ARN_DEV/_PROD: GitHub settings",
    "the runner's tools: docker for the images, PostgreSQL 16 at /usr/lib/postgresql/16/bin",
)


def workflow_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted((root / WORKFLOWS).glob("*.y*ml"))


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (make install puts it into .venv)")
    return found


def _run(command: list[str], root: Path) -> list[str]:
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    text = (done.stdout + done.stderr).strip()
    return [f"{Path(command[0]).name} (exit {done.returncode}):\n{text}"]


def actionlint(root: Path = REPO_ROOT) -> list[str]:
    files = [str(p.relative_to(root)) for p in workflow_files(root)]
    return _run([_tool("actionlint"), "-no-color", *files], root) if files else ["no workflows"]


def zizmor(root: Path = REPO_ROOT) -> list[str]:
    # .github: the workflows and dependabot.yml (zizmor audits both)
    return _run([_tool("zizmor"), "--offline", "--persona", "pedantic", "-q", str(WORKFLOWS.parent)], root)


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    return document if isinstance(document, dict) else {}


def _steps(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_id, step)
        for job_id, job in (document.get("jobs") or {}).items()
        for step in (job.get("steps") or [])
        if isinstance(step, dict)
    ]


def pins(root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for path in workflow_files(root):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(#.*)?$", line)
            if not match or match.group(1).startswith(LOCAL):
                continue
            ref, comment = match.group(1), match.group(2) or ""
            if not PINNED.match(ref):
                problems.append(f"{path.name}:{number}: {ref} is not pinned to a full commit SHA")
            elif not re.search(r"#\s*v\d", comment):
                problems.append(f"{path.name}:{number}: {ref} needs its version in a comment (# vX.Y.Z)")
    return problems


def permissions(root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for path in workflow_files(root):
        document = _load(path)
        if document.get("permissions") != {}:
            problems.append(f"{path.name}: the workflow must grant nothing at the top: permissions: {{}}")
        for job_id, job in (document.get("jobs") or {}).items():
            if "permissions" not in job:
                problems.append(f"{path.name}: job {job_id} names no permissions of its own")
            elif job["permissions"] in ("write-all", "read-all"):
                problems.append(f"{path.name}: job {job_id} has permissions: {job['permissions']}")
    return problems


def no_static_keys(root: Path = REPO_ROOT) -> list[str]:
    return [
        f"{path.name}:{number}: a static AWS key; use the OIDC role "
        "(configure-aws-credentials with role-to-assume)"
        for path in workflow_files(root)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if STATIC_KEYS.search(line)
    ]


def logic_in_make(root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for path in workflow_files(root):
        for job_id, step in _steps(_load(path)):
            command = step.get("run")
            if command is None:
                continue
            command = command.strip()
            if "\n" in command or not (
                command.startswith(("make ", ".ci/run")) or command == ".ci/run" or GLUE.match(command)
            ):
                problems.append(
                    f"{path.name}: job {job_id}: `{command.splitlines()[0]}` is logic in YAML; "
                    "make it a make target or recops command"
                )
    return problems


def prefect_files(root: Path = REPO_ROOT) -> list[str]:
    from recops.continuous.schedules import check_deployments, load_deployments
    from recops.errors import RecopsError

    problems = []
    shapes = {}
    for name in PREFECT_FILES:
        try:
            check_deployments(root / name)
        except RecopsError as exc:
            problems.append(str(exc))
            continue
        shapes[name] = {
            spec.name: (spec.entrypoint, spec.parameters, [s.model_dump() for s in spec.schedules])
            for spec in load_deployments(root / name)
        }
    if len(shapes) == len(PREFECT_FILES) and len(set(map(repr, shapes.values()))) > 1:
        problems.append(
            f"{' and '.join(PREFECT_FILES)} differ in their deployments' entrypoints, parameters or "
            "schedules: the AWS file must run what the local one runs"
        )
    return problems


def bentofile(root: Path = REPO_ROOT) -> list[str]:
    from recops.serving.model_store import bentoml_deprecations_hidden, load_bentoml

    load_bentoml()  # BENTOML_HOME settled before bentoml reads it
    path = root / BENTOFILE
    try:
        with open(path) as handle, bentoml_deprecations_hidden():
            from bentoml._internal.bento.build_config import BentoBuildConfig

            config = BentoBuildConfig.from_yaml(handle)
    except Exception as exc:  # BentoML raises several types for a bad file
        return [f"{BENTOFILE}: not a valid bentofile: {exc}"]
    service_file = str(config.service).split(":")[0] + ".py"
    if not (path.parent / service_file).is_file():
        return [f"{BENTOFILE}: service {config.service} names {service_file}, which is not beside it"]
    return []


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "actionlint": actionlint,
    "zizmor": zizmor,
    "pinned actions": pins,
    "permissions": permissions,
    "no static keys": no_static_keys,
    "logic in make": logic_in_make,
    "prefect files": prefect_files,
    "bentofile": bentofile,
}


def check_all(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Every check's problems, by check name (all empty: the specs pass)."""
    return {name: check(root) for name, check in CHECKS.items()}
