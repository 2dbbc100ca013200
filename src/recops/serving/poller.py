"""A daemon thread that checks something on an interval (what a server worker follows)."""

from __future__ import annotations

import threading
from typing import Any


class Poller:
    """A daemon thread that calls :meth:`check` once at :meth:`start` and every ``interval``
    seconds after, until :meth:`stop`."""

    interval: float

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def check(self) -> bool:
        raise NotImplementedError

    def start(self) -> Any:
        self.check()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
