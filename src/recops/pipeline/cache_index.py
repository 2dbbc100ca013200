"""Where the step cache (recops.pipeline.cache) keeps its index entries and hit records: the
flow's Metaflow datastore (a local folder or S3), under ``<flow>/_recops_step_cache/``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from metaflow import current

from recops.pipeline.digest import short_sha

CACHE_DIR = "_recops_step_cache"
HITS = "_hits"


class Index:
    """Entries and hit records of one flow, in its Metaflow datastore (local folder or S3)."""

    def __init__(self, storage: Any, flow_name: str) -> None:
        self.storage, self.flow_name = storage, flow_name

    @classmethod
    def of_flow(cls, flow: Any) -> Index:
        return cls(flow._datastore._storage_impl, current.flow_name)

    def _path(self, *parts: str) -> str:
        return self.storage.path_join(self.flow_name, CACHE_DIR, *parts)

    def _read(self, paths: list[str]) -> list[dict[str, Any]]:
        records = []
        if not paths:
            return records
        with self.storage.load_bytes(paths) as loaded:
            for _key, local, _meta in loaded:
                if local is None:
                    continue
                try:
                    records.append(json.loads(Path(local).read_text()))
                except (OSError, ValueError):
                    continue  # a torn write: ignored
        return records

    def _files(self, *parts: str) -> list[str]:
        return [r.path for r in self.storage.list_content([self._path(*parts)]) if r.is_file]

    def entries(self, step: str, primary: str) -> list[dict[str, Any]]:
        records = self._read(self._files(step, primary))
        return sorted(records, key=lambda r: r.get("created", ""), reverse=True)

    def _write(self, path: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, sort_keys=True, indent=1).encode()
        self.storage.save_bytes(iter([(path, io.BytesIO(data))]), overwrite=True)

    def add_entry(self, step: str, primary: str, entry: dict[str, Any]) -> None:
        name = short_sha(json.dumps(entry["trace"], sort_keys=True).encode()) + ".json"
        self._write(self._path(step, primary, name), entry)

    def add_hit(self, record: dict[str, Any]) -> None:
        name = record["pathspec"].replace("/", "__") + ".json"
        self._write(self._path(HITS, name), record)

    def hits(self) -> list[dict[str, Any]]:
        return self._read(self._files(HITS))


def storage_for_config() -> Any:
    """The datastore Metaflow's configuration names (METAFLOW_DEFAULT_DATASTORE), as a storage
    object: what ``recops cache report/audit`` read outside a flow."""
    from metaflow.metaflow_config import DEFAULT_DATASTORE
    from metaflow.plugins import DATASTORES

    impl = next(d for d in DATASTORES if d.TYPE == DEFAULT_DATASTORE)
    root = impl.get_datastore_root_from_config(lambda *a, **k: None)
    return impl(root)


def all_hits(storage: Any = None) -> list[dict[str, Any]]:
    """Every hit record of every flow in the datastore."""
    storage = storage or storage_for_config()
    flows = [r.path.rstrip("/").split("/")[-1] for r in storage.list_content([""]) if not r.is_file]
    return [hit for name in flows for hit in Index(storage, name).hits()]


def finished_task(flow_datastore: Any, pathspec: str) -> Any:
    """The datastore of a task that finished successfully, else None (never finished: it died
    after its index entry was written; or its run was deleted; or it failed)."""
    _flow, run_id, step, task_id = pathspec.split("/")
    found = flow_datastore.get_task_datastores(pathspecs=[f"{run_id}/{step}/{task_id}"])
    if not found or "_success" not in found[0] or not found[0]["_success"]:
        return None
    return found[0]
