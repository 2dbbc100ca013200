"""recops's Metaflow configuration: one state root and a user name, however a flow is started.

Metaflow loads this module whenever it is imported in an environment where recops is installed
(its extension mechanism: a ``metaflow_extensions`` namespace package). So a flow started
directly (``python flows/train_recommender.py run``), through ``make``, through the retrain
cycle's Runner, and the Client (``from metaflow import Flow``) all read and write the same
local datastore: ``$RECOPS_HOME/.metaflow`` (default ``.recops/.metaflow`` in the working
directory), where everything else of recops lives, instead of a ``.metaflow`` folder wherever
the command happened to run.

Only defaults: ``METAFLOW_DATASTORE_SYSROOT_LOCAL`` or ``METAFLOW_USER`` (environment or
Metaflow's config file) win, and a cloud profile's S3 datastore is untouched. Kept to the
standard library: it runs at every ``import metaflow``.
"""

import os

from metaflow.metaflow_config import DATASTORE_LOCAL_DIR, DATATOOLS_SUFFIX
from metaflow.metaflow_config_funcs import from_conf


def _recops_home() -> str:
    # recops.paths.recops_home(), without importing recops (light, and no cycle at import time)
    return os.path.abspath(os.environ.get("RECOPS_HOME", ".recops"))


def _user_name() -> str:
    """Metaflow's own order (util.get_username), then a fixed name: Metaflow refuses to run with
    no user name, or as root ("could not determine your user name"), which a container or CI job
    often is."""
    for name in ("SUDO_USER", "USERNAME", "USER", "LOGNAME"):
        value = os.environ.get(name)
        if value and value != "root":
            return value
    return "recops"


DATASTORE_SYSROOT_LOCAL = from_conf("DATASTORE_SYSROOT_LOCAL", _recops_home())
# IncludeFile's copies inside the same .metaflow folder: left unset, Metaflow derives
# <root>/data from the root, which is recops's data cache.
DATATOOLS_LOCALROOT = from_conf(
    "DATATOOLS_LOCALROOT", os.path.join(DATASTORE_SYSROOT_LOCAL, DATASTORE_LOCAL_DIR, DATATOOLS_SUFFIX)
)
USER = from_conf("USER", _user_name())
