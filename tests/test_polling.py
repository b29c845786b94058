"""poll(): backoff until a terminal answer, deadline held, cancel on deadline."""

from __future__ import annotations

import time

import httpx
import pytest

from monitor.config import ServiceConfig
from monitor.enums import Outcome
from probes.base import DeadlineExceeded, ProbeContext, ProbeFailure
from probes.http import Destinations, Request, origin_of
from probes.polling import PhaseClock, poll

SERVICE = ServiceConfig(id="s", provider="openai", canaries=["c"], timeout="2s")


def context() -> ProbeContext:
    return ProbeContext(SERVICE, None, httpx.Client())


def test_returns_the_first_terminal_answer_with_growing_delays():
    calls = []

    def step():
        calls.append(time.monotonic())
        return "done" if len(calls) == 4 else None

    assert poll(context(), step, first_delay=0.05) == "done"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps[0] < gaps[1] < gaps[2]


def test_deadline_holds_and_cancel_runs():
    cancelled = []
    began = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        poll(context(), lambda: None, what="prediction", on_deadline=lambda: cancelled.append(True), first_delay=0.1)
    assert 1.9 <= time.monotonic() - began < 2.5
    assert cancelled == [True]


def test_a_failing_cancel_does_not_hide_the_timeout():
    def broken_cancel():
        raise httpx.ConnectError("refused")

    with pytest.raises(DeadlineExceeded):
        poll(context(), lambda: None, on_deadline=broken_cancel, first_delay=0.5)


def test_phase_clock_splits_a_change_between_two_looks_at_the_midpoint():
    ctx = context()
    clock = PhaseClock(ctx, "queue")
    time.sleep(0.04)
    clock.seen("queue")  # still queued: all of it was queue
    assert 35 <= ctx.phases["queue"] and ctx.phases["generation"] is None
    queued = ctx.phases["queue"]
    time.sleep(0.04)
    clock.seen("generation")  # it started somewhere in these 40 ms: half each
    assert 15 <= ctx.phases["queue"] - queued <= 35 and 15 <= ctx.phases["generation"] <= 35
    assert ctx.phases["queue"] - queued == pytest.approx(ctx.phases["generation"])
    generating = ctx.phases["generation"]
    time.sleep(0.04)
    clock.finished()  # seen done while last seen running: all of it was generation
    assert ctx.phases["generation"] >= generating + 35


def test_phase_clock_places_the_start_by_the_providers_run_time():
    ctx = context()
    clock = PhaseClock(ctx, "queue")
    time.sleep(0.02)
    clock.seen("queue")
    time.sleep(0.3)
    clock.finished()  # queued at one look, done at the next: the split alone would say 150/150
    clock.ran_for(280.0)  # the provider ran it 280 ms, so it started within the first 20 ms of the gap
    total = ctx.phases["queue"] + ctx.phases["generation"]
    assert 280 <= ctx.phases["generation"] <= 300 and ctx.phases["queue"] == pytest.approx(total - ctx.phases["generation"])
    before = dict(ctx.phases)
    clock.ran_for(10_000.0)  # longer than the wait: contradicts our looks, so nothing moves
    assert ctx.phases == before


def test_origins():
    assert origin_of("https://API.example.com:443/v1?x=1") == "https://api.example.com"
    assert origin_of("http://127.0.0.1:8188/x") == "http://127.0.0.1:8188"
    assert origin_of("http://api.example.com/x") != origin_of("https://api.example.com/x")


@pytest.mark.parametrize("url", ["https://evil.example/v1/jobs/1", "http://api.example.com/v1/jobs/1",
                                 "https://api.example.com:8443/v1", "https://api.example.com.evil.example/",
                                 "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "not a url"])
def test_only_the_home_origin_gets_requests(url):
    route = Destinations(home="https://api.example.com", trusted=frozenset({"https://api.example.com"})).route
    assert route(context(), Request("GET", "https://api.example.com/v1/jobs/1"))[0] == httpx.URL("https://api.example.com/v1/jobs/1")
    with pytest.raises(ProbeFailure) as refused:
        route(context(), Request("GET", url, what="job status"))
    assert refused.value.outcome is Outcome.BAD_OUTPUT and "job status URL" in refused.value.detail


def test_an_allowed_origin_must_be_public():
    destinations = Destinations(home="https://api.example.com", allowed=frozenset({"http://169.254.169.254"}))
    with pytest.raises(ProbeFailure, match="non-public address 169.254.169.254") as refused:
        destinations.route(context(), Request("GET", "http://169.254.169.254/latest/meta-data"))
    assert refused.value.outcome is Outcome.BAD_OUTPUT
    open_ctx = ProbeContext(SERVICE.model_copy(update={"allow_private_network": True}), None, httpx.Client())
    assert destinations.route(open_ctx, Request("GET", "http://169.254.169.254/x"))[0].host == "169.254.169.254"
