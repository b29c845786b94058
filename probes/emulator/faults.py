"""Injected faults: which failure each emulated provider should show next.

One fault per (provider, service) at a time; setting a new one replaces the old.  A
fault set without a service applies to every service of that provider; a service is
addressed through the base URL ``/s/<service>/<provider>/...`` (``EmulatorServer.base_url``),
and its own fault wins over the provider-wide one.  Each provider emulator turns a fault
into that provider's own wire form.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

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
    # the image URL is a signed blob-storage URL that no longer holds: 403 with the store's XML error
    "expired_signature": {},     # Azure Blob Storage (OpenAI's): AuthenticationFailed
    "expired_signature_s3": {},  # S3-style stores: AccessDenied, "Request has expired"
    "bad_request": {},
    # provider-native failures of asynchronous jobs
    "job_failure": {},          # the job ends in the provider's failed state
    "stuck_job": {},            # the job never reaches a terminal state
    "unknown_job": {},          # polling answers the provider's "no such job" form
    "output_safety": {},        # the output-stage safety block (content_policy is the input stage)
    # degenerate images with a 200
    "black_image": {},
    "noise_image": {},
    "blurred_image": {},
    "lowres_image": {"factor": 4},  # a 1/factor draft blown up to the requested size (nearest-neighbour)
    "model_swap": {},           # same request, another model's style: fixed-seed drift
    "cached_image": {},         # the same picture whatever the seed: a cache or fallback image
    "execution_cached": {},     # ComfyUI answers every node from its execution cache: nothing was generated
    # a scripted job: pending ``queue_s``, running ``run_s``, then done (async providers; see ``timeline``)
    "timeline": {"queue_s": 0.5, "run_s": 0.5},
}

#: faults answered with a (bad) image instead of an error; see ``images.faulty_image``
IMAGE_FAULTS = frozenset(
    {"truncated_image", "undecodable_image", "blank_image", "wrong_size", "black_image", "noise_image",
     "blurred_image", "lowres_image", "model_swap", "cached_image"}
)
#: faults that only asynchronous (submit-then-poll) providers can show
JOB_FAULTS = frozenset({"job_failure", "stuck_job", "unknown_job"})
#: fault -> the outcome an adapter (plus scoring) must produce on a submit-then-poll provider that shows
#: every fault above except the noise/blur/model-swap ones, which are left to quality scoring
JOB_FAULT_OUTCOMES: dict[str, str] = {
    "server_error": "server_error",
    "slow": "ok",
    "rate_limited": "rate_limited",
    "quota_exhausted": "auth_error",
    "hang": "timeout",
    "content_policy": "content_filtered",
    "output_safety": "content_filtered",
    "invalid_key": "auth_error",
    "malformed_json": "bad_output",
    "truncated_image": "bad_output",
    "undecodable_image": "bad_output",
    "blank_image": "degraded_quality",
    "black_image": "degraded_quality",
    "wrong_size": "bad_output",
    "expired_url": "bad_output",
    "bad_request": "client_error",
    "job_failure": "server_error",
    "stuck_job": "timeout",
    "unknown_job": "timeout",
}
#: WSGI environ key under which the server passes the service named in the URL
SERVICE_KEY = "genstatus.emulator.service"

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


def service_of(environ: dict[str, Any]) -> str | None:
    """The service a request was addressed to (``/s/<service>/...``), if any."""
    return environ.get(SERVICE_KEY)


class FaultBoard:
    """Thread-safe map of (provider, service or None) -> active fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[tuple[str, str | None], Fault] = {}

    def set(self, provider: str, fault: str, /, service: str | None = None, **params: Any) -> Fault:
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
            self._faults[(provider, service or None)] = active
        return active

    def clear(self, provider: str | None = None, service: str | None = None) -> None:
        """Clear everything, one provider's faults (all services), or one service's fault."""
        with self._lock:
            for key in list(self._faults):
                if provider is None or (key[0] == provider and (service is None or key[1] == service)):
                    del self._faults[key]

    def discard(self, provider: str, service: str | None = None, fault: str | None = None) -> None:
        """Clear exactly the fault set for (``provider``, ``service``), nothing else; with ``fault``, only if it is that one.

        Unlike ``clear(provider)``, this leaves the provider's per-service faults alone.
        """
        with self._lock:
            active = self._faults.get((provider, service or None))
            if active is not None and (fault is None or active.name == fault):
                del self._faults[(provider, service or None)]

    def active(self, provider: str, service: str | None = None) -> Fault | None:
        """The fault that applies to ``service`` of ``provider``, without using it up."""
        with self._lock:
            return self._faults.get((provider, service)) or self._faults.get((provider, None))

    def take(self, provider: str, applicable: Collection[str] | None = None, service: str | None = None) -> Fault | None:
        """The fault for one request, counting it against ``count``.

        The service's own fault wins over the provider-wide one.  Faults not in
        ``applicable`` (e.g. an image fault on a model listing) are neither returned
        nor used up.
        """
        with self._lock:
            key = (provider, service) if (provider, service) in self._faults else (provider, None)
            fault = self._faults.get(key)
            if fault is None or (applicable is not None and fault.name not in applicable):
                return None
            if fault.remaining is not None:
                if fault.remaining <= 1:
                    del self._faults[key]
                else:
                    self._faults[key] = Fault(fault.name, fault.params, fault.remaining - 1)
            return fault

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{"openai": {...}, "openai/dalle3": {...}}``: provider-wide and per-service faults."""
        with self._lock:
            return {
                provider if service is None else f"{provider}/{service}": fault.to_dict()
                for (provider, service), fault in sorted(self._faults.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
            }


def _convert(name: str, value: Any, kind: type) -> Any:
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    if isinstance(value, bool) or converted < 0:
        raise ValueError(f"{name} must be a non-negative {kind.__name__}, got {value!r}")
    return converted


def timeline(fault: Fault | None, queue_s: float, run_s: float) -> tuple[float, float]:
    """(seconds pending, seconds running) of an async job: the ``timeline`` fault's script, else the emulator's own."""
    if fault is not None and fault.name == "timeline":
        return float(fault.params["queue_s"]), float(fault.params["run_s"])
    return queue_s, run_s


def delay(fault: Fault | None, stop: threading.Event) -> None:
    """Carry out ``hang`` (until the server stops) or ``slow`` (``seconds``, cut short by a stop)."""
    if fault is None or fault.name not in DELAY_FAULTS:
        return
    if fault.name == "hang":
        stop.wait()
    else:
        stop.wait(fault.params["seconds"])
