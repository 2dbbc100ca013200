"""Promote a tagged Jupyter notebook to a readable Metaflow flow (``recops promote``).

Cell tags say what each code cell is:

- ``parameters`` (papermill's tag): ``name = literal  # help`` lines become ``Parameter``s.
- ``imports``, ``functions``: module-level code of the flow file.
- ``step:NAME``: starts step NAME; the untagged cells below it join the step.
- ``skip``: left out.
- ``resources:cpu=4`` (one tag per key: cpu, memory, gpu, disk; ``resources:cpu=4,memory=16000``
  is read too, though a comma breaks the notebook schema) and ``retry:N`` decorate a step.
- every step is ``@cached`` (recops.pipeline.cache: reused across runs while its code and inputs
  are unchanged; ``--no-cache`` runs everything) unless one of its cells is tagged ``no-cache``,
  as a step with side effects (registering, writing files, calling services) must be.

Values pass between steps as artifacts, worked out by reading the code (see ``analysis``).

    from recops.promote import promote_notebook, check_flow
    source = promote_notebook("notebooks/02_train_sequence_model.ipynb")
"""

from recops.promote.generate import RuffUnavailableError, check_flow, promote_notebook, write_flow
from recops.promote.notebook import PromotionError, default_flow_name, notebook_hash

__all__ = [
    "PromotionError",
    "RuffUnavailableError",
    "check_flow",
    "default_flow_name",
    "notebook_hash",
    "promote_notebook",
    "write_flow",
]
