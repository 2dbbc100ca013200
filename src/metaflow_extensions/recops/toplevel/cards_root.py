"""Cards are written where the Client reads them: ``<local root>/.metaflow/mf.cards``.

Metaflow 2.19's local card store disagrees with itself once the datastore root is set (as
recops's config extension sets it, to ``$RECOPS_HOME``):

- the card writer (``card create``, run by ``@card`` steps) and ``card get`` find the cards'
  folder by walking up from the working directory to a ``.metaflow`` folder, creating
  ``./.metaflow/mf.cards`` where there is none: outside the state root, one per folder a flow
  was started from;
- the Client (``metaflow.cards.get_cards``) reads ``<the task's datastore root>/mf.cards``;
- ``METAFLOW_CARD_LOCALROOT`` cannot reconcile them: with it set, the writer ignores it
  (``get_storage_root`` returns None) and the reader still uses the task's root.

So for a local datastore with a root set and no ``CARD_LOCALROOT`` of the user's, the cards'
folder is the one the Client reads. This runs in every process that imports Metaflow: the flow,
its ``card create`` subprocesses, ``card get`` and the Client.
"""

import os

from metaflow.metaflow_config import CARD_LOCALROOT, CARD_SUFFIX, DATASTORE_LOCAL_DIR, DATASTORE_SYSROOT_LOCAL
from metaflow.plugins.cards.card_datastore import CardDatastore

_recops_metaflows_card_root = CardDatastore.get_storage_root.__func__


def _recops_card_root(cls, storage_type):
    if storage_type == "local" and CARD_LOCALROOT is None and DATASTORE_SYSROOT_LOCAL:
        return os.path.join(DATASTORE_SYSROOT_LOCAL, DATASTORE_LOCAL_DIR, CARD_SUFFIX)
    return _recops_metaflows_card_root(cls, storage_type)


CardDatastore.get_storage_root = classmethod(_recops_card_root)
