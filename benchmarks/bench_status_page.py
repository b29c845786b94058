"""Status page render time: 90 days of history against 1 day, and against a static file of the same size.

Two databases from ``benchmarks.sitegen`` (same services, same seed): the full history (by default
50 services x 3 regions, 90 days at a 1-minute cadence: ~19.6 M runs, stored as production keeps
them -- rollups for every day, raw rows for the retention's 30 days) and 1 day of it.  Both are
served by ``web.create_app`` with the site's config, through the Flask test client and through a
real HTTP server (``web.server.start_server``: waitress, one keep-alive connection per server).

Requested: ``/``, ``/services/<id>`` (a service with an open incident) and ``/api/v2/summary.json``
(reported as "missing" while the app answers 404), and each one's static twin: its body (90 days,
uncompressed) written to a temporary directory as ``.html`` or ``.json`` and served by the same app
instance through a route the benchmark adds, with ``send_from_directory`` -- what Flask's own static
view does -- so the twin has the same size and type and passes through the same after-request hooks
(ETag, gzip) and the same server.

Each figure is the median of ``requests`` timed requests after ``warmup`` untimed ones, in rounds:
every round requests every case once, in a shuffled order, so load from elsewhere on the machine
hits all of them alike.  Three modes:

* ``cold``: before each request, one new canary result is stored through ``ResultStore`` (raw row
  and rollups, as the monitor writes it) and the app's render cache is emptied: every request is a
  full render.  The write is not timed.
* ``live``: a new result before each request, the render cache as configured: what a polling client
  costs while the monitor writes (views that follow incidents, such as ``/`` and ``summary.json``,
  keep their render for a few seconds; the service page shows each new result).
* ``warm``: nothing changes between requests.

Targets: 90-day time <= 1.3 x the 1-day time; ``summary.json`` <= 3 x its static twin; ``/`` <= 10 x
its static twin.  The cold figures show what a render costs, the live ones what serving costs.

    python -m benchmarks.bench_status_page                 # the full size: ~6 min on 2 quiet cores
    python -m benchmarks.bench_status_page --quick --profile
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import http.client
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, send_from_directory

from benchmarks.sitegen import CANARIES, Site, SiteSpec, describe, generate, regions
from monitor.enums import Outcome, ProbeKind
from monitor.store.db import make_engine
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore
from web import close_app, create_app
from web.caching import render_cache
from web.server import WebServer, start_server

ENDPOINTS = {"index": "/", "service": "/services/{service}", "summary": "/api/v2/summary.json"}
STATIC_PREFIX = "/bench-static"
#: 90-day time over 1-day time, at most
HISTORY_TARGET = 1.3
#: endpoint time over its static twin's, at most
STATIC_TARGETS = {"summary": 3.0, "index": 10.0}
#: what a browser sends
HEADERS = {"Accept-Encoding": "gzip, deflate, br", "Accept": "text/html,application/json"}
QUICK_SPEC = SiteSpec(services=4, regions=2, days=4, cadence=timedelta(minutes=10))


# -- the sites and their apps --------------------------------------------------------------


class Writer:
    """Stores a fresh canary result in a site's database, as the monitor does (a change for any cache)."""

    def __init__(self, site: Site) -> None:
        self.engine = make_engine(site.url)
        self.store = ResultStore(self.engine)
        self.services = [s.id for s in site.config.services]
        self.regions = regions(site.spec)
        self.written = 0

    def touch(self, service: str | None = None) -> None:
        now = datetime.now(UTC)
        service = service or self.services[self.written % len(self.services)]
        self.store.record(ResultRecord(
            service=service, canary=CANARIES[0].id, region=self.regions[self.written % len(self.regions)],
            kind=ProbeKind.CANARY, started_at=now - timedelta(seconds=9), finished_at=now, outcome=Outcome.OK,
            latency_ms={"submit": 400.0, "queue": 800.0, "generation": 7200.0, "download": 600.0, "total": 9000.0},
            http_status=200, image_bytes=1_254_000, image_format="png", image_width=1024, image_height=1024,
            quality_score=0.86, quality_verdict="pass", cost=0.04))
        self.written += 1

    def close(self) -> None:
        self.engine.dispose()


@dataclass
class Served:
    """One site: its app (test client and HTTP server) and its writer."""

    name: str  # "90d" or "1d"
    site: Site
    app: Flask
    writer: Writer
    server: WebServer | None = None
    _connection: http.client.HTTPConnection | None = None

    def client_get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        response = self.app.test_client().get(path, headers=HEADERS)
        try:
            return response.status_code, response.get_data(), dict(response.headers)
        finally:
            response.close()

    def http_get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        assert self.server is not None
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile is opened again once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self.server.host, self.server.port, timeout=120)
            try:
                self._connection.request("GET", path, headers=HEADERS)
                response = self._connection.getresponse()
                body = response.read()
                return response.status, body, dict(response.getheaders())
            except (http.client.HTTPException, ConnectionError):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self.server is not None:
            self.server.shutdown()  # releases the app's database pool too
        else:
            close_app(self.app)
        self.writer.close()


def serve(name: str, site: Site, static_dir: Path | None = None) -> Served:
    """The site's app, as production builds it (its config, its own engine); with ``static_dir``, a
    route serving the files there the way Flask's static view does."""
    app = create_app(site.config, database_url=site.url)
    if static_dir is not None:
        app.add_url_rule(f"{STATIC_PREFIX}/<path:name>", "bench_static", lambda name: send_from_directory(static_dir, name))
    return Served(name, site, app, Writer(site))


# -- timing ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One thing requested each round: an endpoint of one site, or a static twin."""

    label: str  # "index 90d", "index 1d", "static index", ...
    served: Served
    path: str
    touch: Callable[[], None] | None  # the change made before a cold request (None: a static twin)
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (transport, mode) -> seconds
    failures: list[str] = field(default_factory=list)

    def get(self, transport: str) -> tuple[int, bytes, dict[str, str]]:
        return (self.served.client_get if transport == "client" else self.served.http_get)(self.path)


def measure_rounds(cases: list[Case], transport: str, mode: str, requests: int, warmup: int, seed: int = 1) -> None:
    """``warmup + requests`` rounds, each case once per round in a shuffled order; times go to ``case.times``."""
    rng = random.Random(seed)
    for round_ in range(warmup + requests):
        for case in rng.sample(cases, len(cases)):
            if mode in ("cold", "live") and case.touch is not None:
                case.touch()
            if mode == "cold":
                with case.served.app.app_context():
                    render_cache().clear()
            began = time.perf_counter()
            status, _body, _headers = case.get(transport)
            elapsed = time.perf_counter() - began
            if status != 200:
                case.failures.append(f"{transport} {mode}: HTTP {status}")
                continue
            if round_ >= warmup:
                case.times.setdefault((transport, mode), []).append(elapsed)


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times) if times else float("nan")


def p90_ms(times: list[float]) -> float:
    ordered = sorted(times)
    return 1000 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else float("nan")


# -- the benchmark --------------------------------------------------------------------------


#: one profiled function: (file:line:function, own seconds, seconds with callees, calls, the function of this
#: repository it is reached from along the heaviest call path -- itself when it is one)
Hotspot = tuple[str, float, float, int, str]


@dataclass
class Weight:
    path: str
    bytes: int
    gzip_bytes: int  # what gzip -6 makes of it (whether or not the server compresses)
    served_encoding: str | None  # Content-Encoding the server answered with to a browser's Accept-Encoding
    served_bytes: int  # bytes on the wire (the body as sent)


@dataclass
class Report:
    long: Site
    short: Site
    cases: list[Case]
    missing: list[str]  # endpoints that answered 404
    weights: dict[str, Weight]
    requests: int
    writes: dict[str, int] = field(default_factory=dict)  # site -> results stored to defeat caches
    profile: list[Hotspot] = field(default_factory=list)  # every function profiled, largest own time first
    profile_requests: int = 0

    def case(self, label: str) -> Case | None:
        return next((c for c in self.cases if c.label == label), None)


def run_benchmark(spec: SiteSpec = SiteSpec(), requests: int = 50, warmup: int = 5, workdir: Path | None = None,
                  profile: int = 0, transports: tuple[str, ...] = ("client", "http"),
                  modes: tuple[str, ...] = ("cold", "live", "warm"), log: Callable[[str], None] | None = None) -> Report:
    """Generate both sites in ``workdir`` (a temporary directory when None) and measure; ``profile`` > 0
    also profiles that many cold requests of ``/`` at 90 days (test client)."""
    say = log or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="bench-status-page-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        static_dir = root / "static"
        static_dir.mkdir(exist_ok=True)
        say(f"generating {spec.days:g} days of history in {root} ...")
        long = generate(root / "site-long.db", spec)
        say(describe(long))
        short = generate(root / "site-1d.db", replace(spec, days=1))
        say(describe(short))
        sites = [serve(f"{long.spec.days:g}d", long, static_dir), serve("1d", short)]
        try:
            return _measure(sites, static_dir, requests, warmup, profile, transports, modes, say)
        finally:
            for served in sites:
                served.close()


def _measure(sites: list[Served], static_dir: Path, requests: int, warmup: int, profile: int,
             transports: tuple[str, ...], modes: tuple[str, ...], say: Callable[[str], None]) -> Report:
    long_site, short_site = sites
    shown = long_site.writer.services[0]  # it has an open incident (sitegen opens the first ones on it)
    paths = {name: path.format(service=shown) for name, path in ENDPOINTS.items()}
    missing = [name for name, path in paths.items() if long_site.client_get(path)[0] == 404]
    if "index" in missing:
        raise RuntimeError("/ answered 404 on the generated site")
    twins = {name: _write_twin(long_site, name, path, static_dir) for name, path in paths.items() if name not in missing}

    cases = []
    for served in sites:
        for name, path in paths.items():
            if name in missing:
                continue
            touch = (lambda w=served.writer: w.touch(shown)) if name == "service" else served.writer.touch
            cases.append(Case(f"{name} {served.name}", served, path, touch))
    cases += [Case(f"static {name}", long_site, twin, None) for name, twin in twins.items()]

    if "http" in transports:
        for served in sites:
            served.server = start_server(served.app)
    over_http = "http" in transports
    weights = {name: _weight(long_site, paths[name], over_http) for name in twins}
    weights |= {f"static {name}": _weight(long_site, twin, over_http) for name, twin in twins.items()}
    weights["index 1d"] = _weight(short_site, "/", over_http)
    for transport in transports:
        for mode in modes:
            say(f"measuring: {transport}, {mode} ({warmup} + {requests} rounds of {len(cases)} requests) ...")
            measure_rounds(cases, transport, mode, requests, warmup)
    report = Report(long_site.site, short_site.site, cases, missing, weights, requests)
    if profile:
        say(f"profiling {profile} cold requests of / at {long_site.name} ...")
        report.profile, report.profile_requests = profile_index(long_site, profile), profile
    report.writes = {served.name: served.writer.written for served in sites}
    return report


def _write_twin(served: Served, name: str, path: str, static_dir: Path) -> str:
    """Write the endpoint's body (uncompressed) as a static file; returns the path that serves it."""
    status, body, headers = served.client_get(path)
    if status != 200:
        raise RuntimeError(f"{path} answered {status} on the generated site")
    filename = f"{name}.json" if path.endswith(".json") else f"{name}.html"  # the same type, so gzip treats it alike
    (static_dir / filename).write_bytes(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body)
    return f"{STATIC_PREFIX}/{filename}"


def _weight(served: Served, path: str, over_http: bool) -> Weight:
    status, body, headers = served.client_get(path)
    encoding = headers.get("Content-Encoding")
    plain = gzip.decompress(body) if encoding == "gzip" else body
    served_bytes = len(body)
    if over_http:
        status, wire, http_headers = served.http_get(path)
        encoding, served_bytes = http_headers.get("Content-Encoding"), len(wire)
    return Weight(path, len(plain), len(gzip.compress(plain, 6)), encoding, served_bytes)


def profile_index(served: Served, count: int) -> list[Hotspot]:
    """cProfile of ``count`` cold requests of ``/`` (test client): every function, largest own time first."""
    profiler = cProfile.Profile()
    for _ in range(count):
        served.writer.touch()
        with served.app.app_context():
            render_cache().clear()
        profiler.enable()
        served.client_get("/")
        profiler.disable()
    table = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [(_where(key), tottime, cumtime, calls, _reached_from(table, key))
            for key, (_cc, calls, tottime, cumtime, _callers) in table.items()]
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    return f"{_short(filename)}:{line}:{function}"


def _reached_from(table: dict, key: tuple[str, int, str]) -> str:
    """The nearest function of this repository up the heaviest call path (``-`` when there is none)."""
    seen = set()
    while key not in seen:
        seen.add(key)
        if ours(_where(key)):
            return _where(key)
        callers = table.get(key, (0, 0, 0, 0, {}))[4]
        if not callers:
            return "-"
        key = max(callers, key=lambda caller: callers[caller][3])  # the edge carrying the most time
    return "-"


def ours(where: str) -> bool:
    """A function of this repository's ``web`` or ``monitor`` packages."""
    return where.startswith(("web/", "monitor/"))


def _short(filename: str) -> str:
    """A path from the repository or the site-packages root, so hot spots read ``web/queries.py``."""
    for marker in (f"{os.sep}site-packages{os.sep}", f"{Path(__file__).resolve().parent.parent}{os.sep}"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- figures --------------------------------------------------------------------------------


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "FAIL"


def figures(report: Report) -> list[dict[str, Any]]:
    long_days = f"{report.long.spec.days:g}d"
    rows: list[dict[str, Any]] = [
        {"name": f"generate {long_days} site", "value": round(report.long.seconds, 1), "unit": "s", "note": describe(report.long)},
        {"name": "generate 1d site", "value": round(report.short.seconds, 1), "unit": "s",
         "note": f"{report.short.rows.get('probe_results', 0):,} raw rows, {report.short.bytes / 1e6:,.1f} MB"},
    ]
    index = report.weights.get("index")
    if index:
        served = f"served {index.served_encoding} {index.served_bytes:,} B" if index.served_encoding else "served uncompressed"
        weight_1d = report.weights.get("index 1d")
        rows.append({"name": f"page weight / ({long_days})", "value": index.bytes, "unit": "bytes",
                     "note": f"gzip -6 would be {index.gzip_bytes:,} B; {served}"
                             + (f"; with 1 day of history {weight_1d.bytes:,} B (gzip {weight_1d.gzip_bytes:,} B)" if weight_1d else "")})
    for name in ("service", "summary"):
        weight = report.weights.get(name)
        if weight:
            rows.append({"name": f"page weight {weight.path}", "value": weight.bytes, "unit": "bytes",
                         "note": f"gzip -6 {weight.gzip_bytes:,} B; {weight.served_encoding or 'uncompressed'}"})
    for name in report.missing:
        rows.append({"name": f"{ENDPOINTS[name]}", "value": "missing", "unit": "", "note": "HTTP 404: not measured"})
    modes = sorted({key for c in report.cases for key in c.times}, key=lambda k: (k[0] != "client", k[1] != "cold"))
    for transport, mode in modes:
        where = f"{'test client' if transport == 'client' else 'HTTP'}, {mode}"
        for name in ENDPOINTS:
            long, short, twin = report.case(f"{name} {long_days}"), report.case(f"{name} 1d"), report.case(f"static {name}")
            if long is None or short is None or twin is None:
                continue
            long_times, short_times = long.times.get((transport, mode), []), short.times.get((transport, mode), [])
            if not long_times or not short_times:
                rows.append({"name": f"{name} ({where})", "value": "failed", "unit": "",
                             "note": "; ".join(sorted(set(long.failures + short.failures)))[:200]})
                continue
            long_ms, short_ms = median_ms(long_times), median_ms(short_times)
            ratio = long_ms / short_ms
            rows.append({"name": f"{name} {long_days} ({where})", "value": round(long_ms, 2), "unit": "ms (median)",
                         "note": f"p90 {p90_ms(long_times):.1f} ms; 1d {short_ms:.2f} ms (p90 {p90_ms(short_times):.1f}); "
                                 f"{long_days}/1d {ratio:.2f}x: {_verdict(ratio, HISTORY_TARGET)} (<= {HISTORY_TARGET}x)"})
            twin_times = twin.times.get((transport, mode), [])
            if twin_times:
                over, twin_ms = long_ms / median_ms(twin_times), median_ms(twin_times)
                verdict = (f"{_verdict(over, STATIC_TARGETS[name])} (<= {STATIC_TARGETS[name]:g}x)" if name in STATIC_TARGETS
                           else "no target")
                rows.append({"name": f"{name} {long_days} / static twin ({where})", "value": round(over, 1), "unit": "x",
                             "note": f"{verdict}; twin {report.weights[f'static {name}'].bytes:,} B: {twin_ms:.2f} ms "
                                     f"(p90 {p90_ms(twin_times):.2f})"})
    if report.profile:
        n = report.profile_requests
        for where, tottime, cumtime, calls, via in report.profile[:5]:
            rows.append({"name": f"hot spot: {where}", "value": round(1000 * tottime / n, 2), "unit": "ms own/request",
                         "note": f"{1000 * cumtime / n:.1f} ms with callees, {calls / n:,.0f} calls/request"
                                 + ("" if via == where else f"; from {via}")})
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return figures(run_benchmark(QUICK_SPEC, requests=5, warmup=1))
    return figures(run_benchmark(SiteSpec(), requests=50, warmup=5))


def profile_text(report: Report, top: int = 25) -> str:
    """The profile of ``/``: every function by own time, then this repository's by time with callees."""
    n = max(1, report.profile_requests)
    head = f"{'own ms':>9} {'cum ms':>9} {'calls':>9}  where"

    def line(row: Hotspot) -> str:
        where, own, cumulative, calls, via = row
        origin = "" if via == where else f"  (from {via})"
        return f"{1000 * own / n:9.2f} {1000 * cumulative / n:9.2f} {calls / n:9,.0f}  {where}{origin}"

    repo = sorted((r for r in report.profile if ours(r[0])), key=lambda r: r[2], reverse=True)
    return "\n".join([
        f"cProfile of {n} cold requests of / ({report.long.spec.days:g}d, test client), per request, by own time:",
        head, *map(line, report.profile[:top]), "",
        "this repository's functions (web/, monitor/) by time with callees:", head, *map(line, repo[:top])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_status_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=SiteSpec.services)
    parser.add_argument("--days", type=float, default=SiteSpec.days)
    parser.add_argument("--regions", type=int, default=SiteSpec.regions)
    parser.add_argument("--cadence", type=float, default=1.0, help="minutes between scheduled runs")
    parser.add_argument("--raw-days", type=float, default=None,
                        help="days of raw results kept (default: what the retention keeps, 30 days)")
    parser.add_argument("--seed", type=int, default=SiteSpec.seed)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per case and mode (median of these)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests before them")
    parser.add_argument("--transport", choices=("client", "http", "both"), default="both")
    parser.add_argument("--mode", choices=("cold", "live", "warm", "all"), default="all")
    parser.add_argument("--profile", type=int, nargs="?", const=20, default=0, metavar="N",
                        help="also profile N cold requests of / (default 20) and print the hot spots")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the databases to DIR and keep them")
    parser.add_argument("--quick", action="store_true", help="a tiny site and 5 requests (a smoke run)")
    args = parser.parse_args(argv)
    from benchmarks.__main__ import print_table

    if args.quick:
        spec, requests, warmup = QUICK_SPEC, 5, 1
    else:
        spec = SiteSpec(services=args.services, regions=args.regions, days=args.days,
                        cadence=timedelta(minutes=args.cadence), raw_days=args.raw_days, seed=args.seed)
        requests, warmup = args.requests, args.warmup
    began = time.perf_counter()
    report = run_benchmark(
        spec, requests, warmup, args.keep, args.profile,
        transports=("client", "http") if args.transport == "both" else (args.transport,),
        modes=("cold", "live", "warm") if args.mode == "all" else (args.mode,),
        log=lambda message: print(message, file=sys.stderr, flush=True))
    print_table([{"bench": "status_page", **row} for row in figures(report)])
    if report.profile:
        print()
        print(profile_text(report))
    print(f"took {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
