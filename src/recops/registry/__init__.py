"""The model registry (MLflow): the only package that imports mlflow.

Callers use the package: ``from recops import registry``, then ``registry.gate(...)``,
``registry.promote(...)``, ``registry.load_checkpoint("champion")``. Modules, one job each:

- ``store``: where the registry is, the client, and the names of everything in it
- ``pyfunc``: the MLflow pyfunc flavour (its ``predict`` is the Recommender)
- ``register``: one trained model -> one MLflow run and model version (all or nothing)
- ``versions``: reading versions, aliases, and the artifacts each version saved
- ``aliases``: moving ``champion`` (promote, rollback)
- ``history``: the append-only histories of gate decisions (per version) and champion moves
- ``gate_rules``: the champion/challenger rule; ``gate_checks``: behavioural checks (latency
  beside the champion) and the refusals (leaked test sequences, other catalogues); both pure,
  no MLflow; ``gate``: running them
"""

import warnings

with warnings.catch_warnings():
    # mlflow 3.17 warns, while importing mlflow.pyfunc, about Any-typed fields of its own
    # request schemas (mlflow.types.responses); nothing of ours, and shown to every CLI user.
    # Every module of this package imports mlflow after this block has run.
    warnings.filterwarnings("ignore", message=r".*Any type hint is inferred as AnyType", category=UserWarning)
    import mlflow.pyfunc  # noqa: F401

from recops.registry.aliases import (
    ANY_CHAMPION,
    ChampionMovedError,
    promote,
    rollback,
    rollback_target,
    set_alias,
)
from recops.registry.gate import gate
from recops.registry.gate_rules import GateDecision
from recops.registry.register import log_and_register
from recops.registry.store import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT_NAME,
    MODEL_NAME,
    CredentialsRefusedError,
    RegistryError,
    artifact_root,
    mlflow_client,
    tracking_uri,
)
from recops.registry.versions import (
    CorruptCheckpointError,
    ModelVersionInfo,
    get_version,
    list_versions,
    load_checkpoint,
    load_data_profile,
)

__all__ = [
    "ANY_CHAMPION",
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT_NAME",
    "MODEL_NAME",
    "ChampionMovedError",
    "CorruptCheckpointError",
    "CredentialsRefusedError",
    "GateDecision",
    "ModelVersionInfo",
    "RegistryError",
    "artifact_root",
    "gate",
    "get_version",
    "list_versions",
    "load_checkpoint",
    "load_data_profile",
    "log_and_register",
    "mlflow_client",
    "promote",
    "rollback",
    "rollback_target",
    "set_alias",
    "tracking_uri",
]
