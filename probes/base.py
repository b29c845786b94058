"""The adapter interface and what an adapter returns: the provider's answer to one probe run.

An adapter speaks one provider's protocol: ``generate`` sends the canary and
returns the raw image (or raises :class:`ProbeFailure` with a classified
outcome); ``health_check`` runs the provider's cheap check.  ``Adapter.probe``
wraps either in timing, the deadline and error classification, so every
adapter reports failures the same way and never lets an exception escape.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from monitor.config.schema import SEED_LIMIT
from monitor.enums import Outcome, ProbeKind
from probes.answers import MAX_ERROR_BODY, body_text, status_failure
from probes.context import PHASES, ProbeContext
from probes.failure import DeadlineExceeded, ProbeFailure
from probes.http import Destinations, Reply, Request, origin_of, send
from probes.sanitize import sanitize

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from monitor.config import ServiceConfig

#: result fields whose text comes from the provider, and the bytes kept of each
PROVIDER_STRINGS = (("request_id", 200), ("model_version", 200), ("revised_prompt", 4000))
#: the largest seed drawn or sent (every provider takes a signed 32-bit seed; the config allows no more)
SEED_MAX = SEED_LIMIT

__all__ = ["PHASES", "SEED_MAX", "Adapter", "DeadlineExceeded", "Generation", "HealthCheck", "ProbeContext", "ProbeFailure",
           "ProbeResult", "Reply", "Request", "SizeCheck", "random_seed"]


def random_seed() -> int:
    """A fresh seed in ``1..SEED_MAX``: for ``seed: random`` and for providers that cache identical requests."""
    return random.randint(1, SEED_MAX)


class SizeCheck(StrEnum):
    """How scoring compares the image's size with the canary's ``size``.

    Providers that take an aspect ratio instead of pixels (Stability v2beta, Gemini) pick
    their own resolution: ``aspect`` checks the ratio only; ``none`` skips the check
    (e.g. a Midjourney grid).
    """

    EXACT = "exact"
    ASPECT = "aspect"
    NONE = "none"


@dataclass
class ProbeResult:
    """What the provider answered to one probe run, as the adapter classified it.

    The runner scores ``image`` and joins the two into the stored record
    (``monitor.store.record.ResultRecord``, whose ``to_dict`` is the JSON of ``genstatus probe --json``).
    """

    service: str
    canary: str | None
    region: str
    kind: ProbeKind
    started_at: datetime
    finished_at: datetime | None = None
    outcome: Outcome = Outcome.PROBE_ERROR
    latency_ms: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(PHASES))
    http_status: int | None = None
    request_id: str | None = None
    error_detail: str | None = None
    cost: float | None = None
    model_version: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    # The generated image itself and how to check its size: handed to scoring, never stored or printed.
    image: bytes | None = field(default=None, repr=False, compare=False)
    size_check: SizeCheck = field(default=SizeCheck.EXACT, repr=False, compare=False)


@dataclass
class Generation:
    """What an adapter got back from a successful generation request."""

    image: bytes
    http_status: int | None = None
    request_id: str | None = None
    model_version: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None
    size_check: SizeCheck = SizeCheck.EXACT


@dataclass
class HealthCheck:
    """What a successful cheap check returned."""

    http_status: int | None = None
    request_id: str | None = None
    detail: str | None = None


class Adapter(ABC):
    """One provider's protocol.  Subclasses set ``provider`` and register in ``probes.registry``."""

    provider: ClassVar[str]
    #: False for providers without a seed parameter: no seed is drawn or recorded for them
    supports_seed: ClassVar[bool] = True
    #: optional pydantic model validating ``service.options`` (unknown keys rejected)
    options_model: ClassVar[type[BaseModel] | None] = None
    #: the validation context ``options_model`` gets here (e.g. to defer reading files to each run)
    options_context: ClassVar[dict[str, Any] | None] = None
    #: the response header carrying the provider's request id
    request_id_header: ClassVar[str] = "x-request-id"
    #: Other hosts of the same provider that its answers may name (polling and result URLs), allowed
    #: over https on the default port only while ``base_url`` is itself one of them: an explicit list
    #: per adapter (BFL's regional API hosts), never a suffix match.  Every other origin is refused.
    sibling_hosts: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, service: ServiceConfig) -> None:
        self.service = service
        self.options = (
            self.options_model.model_validate(service.options, context=self.options_context)
            if self.options_model else service.options
        )

    @abstractmethod
    def generate(self, ctx: ProbeContext) -> Generation:
        """Send ``ctx.canary`` and return the image, or raise ``ProbeFailure``."""

    @abstractmethod
    def health_check(self, ctx: ProbeContext) -> HealthCheck:
        """The provider's cheap check; raise ``ProbeFailure`` when unhealthy."""

    #: the provider's public API address, used when the service sets no ``base_url``
    default_base_url: ClassVar[str] = ""
    #: the environment variable conventionally holding the key (named in the missing-key error)
    key_variable: ClassVar[str] = "API_KEY"

    @property
    def base_url(self) -> str:
        return (self.service.base_url or self.default_base_url).rstrip("/")

    def api_key(self) -> str:
        """The service's key; a missing one is our configuration problem (``probe_error``)."""
        if self.service.api_key is None:
            raise ProbeFailure(
                Outcome.PROBE_ERROR,
                f"service {self.service.id!r} has no api_key (set e.g. api_key: ${{{self.key_variable}}})",
            )
        return self.service.api_key.get_secret_value()

    def headers(self) -> dict[str, str]:
        """Headers for every request (credentials included)."""
        return {}

    # -- sending requests: the one way every adapter talks to its provider -------------------

    def configured_origins(self) -> Iterable[str]:
        """Origins besides ``base_url``'s that the service's own config names as request targets."""
        return ()

    def destinations(self) -> Destinations:
        """Where this service's requests (and so its credentials) may go; see ``probes.http.Destinations``."""
        home = origin_of(self.base_url)
        trusted = {home, *(origin_of(url) for url in self.configured_origins())}
        allowed = {origin_of(url) for url in self.service.allowed_origins}
        if httpx.URL(self.base_url).host in self.sibling_hosts:
            allowed |= {origin_of(f"https://{host}") for host in self.sibling_hosts}
        return Destinations(home=home, trusted=frozenset(trusted), allowed=frozenset(allowed - trusted))

    def check_destinations(self, ctx: ProbeContext, *requests: Request) -> None:
        """Refuse now what ``send`` would refuse later: a job whose polling or cancel URL is elsewhere is not polled."""
        destinations = self.destinations()
        for request in requests:
            destinations.route(ctx, request)

    def failure(self, response: httpx.Response, raw: bytes) -> ProbeFailure:
        """Classify an error answer (``raw`` is the start of its body); providers refine the generic rules."""
        return status_failure(response, f"HTTP {response.status_code}: {body_text(raw)}",
                              request_id=response.headers.get(self.request_id_header))

    def send(
        self,
        ctx: ProbeContext,
        request: Request,
        *,
        ok: Collection[int] = (200,),
        keep: Collection[int] = (),
        limit: int = MAX_ERROR_BODY,
        phase: str | None = None,
        record: bool = True,
    ) -> Reply:
        """Send ``request`` (streamed, only to an allowed origin) and read its answer.

        A status in ``ok`` has its body read (at most ``limit`` bytes, deadline checked per chunk);
        one in ``keep`` is returned unread; any other is raised as ``self.failure``.  ``phase``
        times the request; ``record=False`` leaves the status and request id of the run alone.
        """
        return send(ctx, request, destinations=self.destinations(), failure=self.failure,
                    request_id_header=self.request_id_header, ok=ok, keep=keep, limit=limit, phase=phase,
                    record=record)

    # -- the template every adapter shares -------------------------------------------

    def probe(self, ctx: ProbeContext, kind: ProbeKind = ProbeKind.CANARY) -> ProbeResult:
        """Run one generation (or health check) and classify how it ended.  Never raises."""
        canary_id = ctx.canary.id if ctx.canary is not None else None
        result = ProbeResult(
            service=self.service.id,
            canary=canary_id if kind is not ProbeKind.HEALTH else None,
            region=ctx.region,
            kind=kind,
            started_at=datetime.now(UTC),
            seed=ctx.seed,
        )
        try:
            if kind is ProbeKind.HEALTH:
                check = self.health_check(ctx)
                result.outcome = Outcome.OK
                result.http_status = check.http_status
                result.request_id = check.request_id
                result.error_detail = sanitize(check.detail, ctx.secrets()) if check.detail else None
            else:
                generation = self.generate(ctx)
                result.outcome = Outcome.OK
                result.image = generation.image
                result.size_check = SizeCheck(generation.size_check)
                result.http_status = generation.http_status
                result.request_id = generation.request_id
                result.model_version = generation.model_version
                result.revised_prompt = generation.revised_prompt
                if generation.seed is not None:
                    result.seed = generation.seed
                result.cost = self.service.cost_per_image
        except ProbeFailure as failure:
            result.outcome = failure.outcome
            result.error_detail = sanitize(failure.detail, ctx.secrets())
            result.http_status = failure.http_status or ctx.http_status
            result.request_id = failure.request_id or ctx.request_id
        except httpx.TimeoutException as exc:
            result.outcome = Outcome.CONNECTION_ERROR if isinstance(exc, httpx.ConnectTimeout) else Outcome.TIMEOUT
            result.error_detail = sanitize(f"{type(exc).__name__}: {exc}", ctx.secrets())
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            result.outcome = Outcome.CONNECTION_ERROR
            result.error_detail = sanitize(f"{type(exc).__name__}: {exc}", ctx.secrets())
        except RecursionError:  # only a provider's answer nests this deep (JSON thousands of levels down): garbage, not our bug
            result.outcome = Outcome.BAD_OUTPUT
            result.error_detail = "the provider's answer is nested too deeply to read (thousands of levels)"
        except Exception as exc:  # noqa: BLE001 - a bug on our side must not kill the scheduler
            result.outcome = Outcome.PROBE_ERROR
            result.error_detail = sanitize(f"{type(exc).__name__}: {exc}", ctx.secrets())
        finally:
            result.finished_at = datetime.now(UTC)
            ctx.phases["total"] = (time.monotonic() - ctx.started_monotonic) * 1000.0
            result.latency_ms = {k: (round(v, 1) if v is not None else None) for k, v in ctx.phases.items()}
        if result.http_status is None:
            result.http_status = ctx.http_status
        if result.request_id is None:
            result.request_id = ctx.request_id
        # every string the provider chose is redacted too: a key echoed in a request id or a model name
        # must not reach the database, the spool or ``probe --json``
        for name, limit in PROVIDER_STRINGS:
            if (value := getattr(result, name)) is not None:
                setattr(result, name, sanitize(value, ctx.secrets(), limit=limit))
        return result
