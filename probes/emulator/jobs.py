"""The emulators' in-memory stores of jobs and generated files.

Only the newest entries are kept, so a long demo or test session cannot grow the
emulator without bound; an evicted job or file then answers as unknown, like a
provider's expired one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """A thread-safe map that keeps the newest ``limit`` entries (by insertion)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[str, V] = OrderedDict()

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._items.get(key)

    def values(self) -> list[V]:
        """A snapshot of the kept entries, oldest first."""
        with self._lock:
            return list(self._items.values())
