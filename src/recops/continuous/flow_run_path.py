"""What a Prefect flow run imports from: the entrypoint's folder comes first on ``sys.path``.

Prefect runs a deployment's entrypoint as a script and leaves the script's folder first on
``sys.path`` for the rest of the flow run, so a module there named as an installed package
hides that package from everything the run imports. ``recops schedule check`` (and so CI)
names such modules before a deploy: nothing else offline shows it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path


def hidden_modules(script: Path) -> list[str]:
    """The modules beside a flow's entrypoint ``script`` that would hide installed ones in its runs.

    Prefect runs an entrypoint as a script and leaves the script's folder first on ``sys.path``
    for the rest of the flow run (``prefect.utilities.importtools.load_script_as_module``), so a
    ``google.py`` beside it becomes the ``google`` of mlflow's ``import google.protobuf``: the run
    fails at the first such import, long after the entrypoint loaded, and nothing offline shows it.
    """
    import importlib.machinery
    import sys

    script = script.resolve()
    if not script.parent.is_dir():
        return []  # loading the entrypoint fails, and says so
    elsewhere = [entry for entry in _fresh_sys_path() if Path(entry).resolve() != script.parent]
    hidden = []
    for sibling in sorted(script.parent.iterdir()):
        if sibling == script:
            continue  # the script itself is loaded by its path, under a name of Prefect's
        if sibling.suffix == ".py" and sibling.stem != "__init__":
            name = sibling.stem
        elif sibling.is_dir() and (sibling / "__init__.py").is_file():
            name = sibling.name
        else:
            continue
        if name in sys.builtin_module_names or importlib.machinery.FrozenImporter.find_spec(name):
            continue  # found before sys.path is searched: never hidden
        if (other := importlib.machinery.PathFinder.find_spec(name, elsewhere)) is not None:
            where = other.origin or ", ".join(other.submodule_search_locations or [])
            hidden.append(f"{sibling.name} hides the module {name} ({where})")
    return hidden


@functools.cache
def _fresh_sys_path() -> tuple[str, ...]:
    """``sys.path`` as a new process of this interpreter starts (stdlib, site-packages, the editable
    install's entries), without the current directory: where a flow run finds what it imports.
    Not this process's: Prefect left the folder of every entrypoint it loaded here on it."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(json.loads(done.stdout))
