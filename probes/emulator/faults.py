"""Injected faults: which failure each emulated provider should show next.

One fault per provider at a time; setting a new one replaces the old.  Each
provider emulator turns a fault into that provider's own wire form.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Collection

# fault name -> its parameters and their defaults (every fault also takes ``count``)
FAULTS: dict[str, dict[str, Any]] = {
    "server_error": {},
    "rate_limited": {"retry_after": 5},
    "quota_exhausted": {},
    "hang": {},
    "slow": {"seconds": 3.0},
    "content_policy": {},
    "invalid_key": {},
    "malformed_json": {},
    "truncated_image": {},
    "undecodable_image": {},
    "blank_image": {},
    "wrong_size": {},
    "expired_url": {},
    "bad_request": {},
}

#: faults that delay a request rather than replace its answer
DELAY_FAULTS = frozenset({"hang", "slow"})
#: faults that need no generated image, so they also apply to cheap checks
REQUEST_FAULTS = frozenset(
    {"server_error", "rate_limited", "quota_exhausted", "hang", "slow", "invalid_key", "malformed_json", "bad_request"}
)


@dataclass(frozen=True)
class Fault:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    #: requests left before the fault clears itself; None = until cleared
    remaining: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fault": self.name, **self.params, "remaining": self.remaining}


class FaultBoard:
    """Thread-safe map of provider -> active fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}

    def set(self, provider: str, fault: str, /, **params: Any) -> Fault:
        """Activate ``fault`` for ``provider``; raise ``ValueError`` for unknown names or bad values.

        Values may be strings (from a query string); they are converted to the
        type of the parameter's default.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        defaults = FAULTS[fault]
        count = params.pop("count", None)
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            accepted = ", ".join([*defaults, "count"])
            raise ValueError(f"fault {fault!r} does not take {', '.join(unknown)} (accepted: {accepted})")
        values = {name: _convert(name, params.get(name, default), type(default)) for name, default in defaults.items()}
        remaining = None if count is None else _convert("count", count, int)
        if remaining is not None and remaining < 1:
            raise ValueError("count must be at least 1")
        active = Fault(fault, values, remaining)
        with self._lock:
            self._faults[provider] = active
        return active

    def clear(self, provider: str | None = None) -> None:
        with self._lock:
            if provider is None:
                self._faults.clear()
            else:
                self._faults.pop(provider, None)

    def active(self, provider: str) -> Fault | None:
        """The provider's fault, without using it up."""
        with self._lock:
            return self._faults.get(provider)

    def take(self, provider: str, applicable: Collection[str] | None = None) -> Fault | None:
        """The fault for one request, counting it against ``count``.

        Faults not in ``applicable`` (e.g. an image fault on a model listing) are
        neither returned nor used up.
        """
        with self._lock:
            fault = self._faults.get(provider)
            if fault is None or (applicable is not None and fault.name not in applicable):
                return None
            if fault.remaining is not None:
                if fault.remaining <= 1:
                    del self._faults[provider]
                else:
                    self._faults[provider] = Fault(fault.name, fault.params, fault.remaining - 1)
            return fault

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {provider: fault.to_dict() for provider, fault in sorted(self._faults.items())}


def _convert(name: str, value: Any, kind: type) -> Any:
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    if isinstance(value, bool) or converted < 0:
        raise ValueError(f"{name} must be a non-negative {kind.__name__}, got {value!r}")
    return converted


def delay(fault: Fault | None, stop: threading.Event) -> None:
    """Carry out ``hang`` (until the server stops) or ``slow`` (``seconds``, cut short by a stop)."""
    if fault is None or fault.name not in DELAY_FAULTS:
        return
    if fault.name == "hang":
        stop.wait()
    else:
        stop.wait(fault.params["seconds"])
