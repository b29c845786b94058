"""Failed sign-ins, counted per client address and per user name, in memory.

``MAX_FAILURES`` failures within ``WINDOW`` lock that key until the oldest of them is ``WINDOW``
old (the answer is 429 with ``Retry-After``).  Thread-safe; at most ``max_keys`` keys are kept,
the least recently failed dropped first, so a flood of made-up names cannot grow it without end.
Per process: several web processes each count their own (the lock-out is then at most
``processes x MAX_FAILURES`` tries per window).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

MAX_FAILURES = 5
WINDOW = 15 * 60.0
MAX_KEYS = 10_000


class FailureLimiter:
    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, keys: Iterable[str]) -> int | None:
        """Seconds until every one of ``keys`` may try again; None when none is locked out."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._fresh(key, now)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(wait, times[0] + self.window - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._fresh(key, now)
                if times is None:
                    times = self._failures[key] = deque(maxlen=self.max_failures)
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)

    def _fresh(self, key: str, now: float) -> deque[float] | None:
        """The failures of ``key`` within the window (older ones dropped); None when there are none."""
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
