"""The HTTP client every adapter uses: one per service, explicit limits, no surprises.

Redirects are off (``probes.download`` follows them by hand so each hop is checked),
and ``trust_env`` is off so a stray ``HTTPS_PROXY`` or ``.netrc`` on the monitoring
host cannot change where probes go or what credentials they carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import ServiceConfig

USER_AGENT = "genstatus/0.1"
CONNECT_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 5.0


def client_timeout(service: "ServiceConfig") -> httpx.Timeout:
    """Per-phase timeouts, none longer than the service's whole-run deadline."""
    total = service.timeout.total_seconds()
    return httpx.Timeout(
        connect=min(CONNECT_TIMEOUT_S, total),
        read=total,
        write=min(WRITE_TIMEOUT_S, total),
        pool=min(POOL_TIMEOUT_S, total),
    )


def make_client(service: "ServiceConfig") -> httpx.Client:
    """The client for one service; the caller closes it (``with make_client(s) as client``)."""
    # a canary run holds one connection, plus one for an image download on another host
    connections = 2 * service.concurrency + 2
    return httpx.Client(
        timeout=client_timeout(service),
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=30.0,
        ),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
    )
