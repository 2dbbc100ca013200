"""papermill's engine ``recops``: nbclient's, with the kernel's traffic encrypted.

papermill's default engine starts the kernel over plain TCP on localhost, and ipykernel (7.x)
warns on every run that "code and outputs are sent in plain text". jupyter_client (8.10) can
provision CurveZMQ keys for a kernel whose kernelspec declares support (ipykernel's does):
``KernelManager.transport_encryption = "auto"``. This engine turns that on, so the warning is
gone because the cause is. A kernelspec without Curve support runs as before ("auto").

Registered as a papermill engine (pyproject's ``papermill.engine`` entry point): recops's own
notebook runs use it (the report step), and so can the command line:
``papermill --engine recops notebooks/01_explore_sessions.ipynb out.ipynb``.
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine
from traitlets.config import Config

ENGINE_NAME = "recops"


class EncryptedKernelEngine(NBClientEngine):
    """nbclient's engine, the kernel started with CurveZMQ transport encryption."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        config = Config(kwargs.pop("config", None) or {})
        config.KernelManager.setdefault("transport_encryption", "auto")
        return super().execute_managed_notebook(nb_man, kernel_name, config=config, **kwargs)
