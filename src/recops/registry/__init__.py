"""The model registry (MLflow): the only package that imports mlflow.

Callers use the package: ``from recops import registry``; ``registry.gate(...)``.
"""

from recops.registry.versions import *  # noqa: F403
