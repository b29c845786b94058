"""Hostile inputs that used to get through: each test attacks the way the finding was made."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import create_engine

from monitor.cli import main
from monitor.store.models import Base
from probes.download import is_public_address
from web import create_app


@pytest.mark.parametrize("address", [
    "2002:7f00:1::",        # 6to4 wrapping 127.0.0.1
    "2002:a9fe:a9fe::1",    # 6to4 wrapping 169.254.169.254 (cloud metadata)
    "64:ff9b::7f00:1",      # NAT64 wrapping 127.0.0.1
    "64:ff9b::a00:1",       # NAT64 wrapping 10.0.0.1
    "::ffff:192.168.1.1",   # IPv4-mapped
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo: the client address is 192.0.2.45 (documentation, not public)
])
def test_ipv6_wrappers_of_private_ipv4_addresses_are_not_public(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "2001:4860:4860::8888", "8.8.8.8"])
def test_public_addresses_stay_public(address):
    assert is_public_address(ipaddress.ip_address(address))


@pytest.fixture
def client(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'web.db'}")
    Base.metadata.create_all(engine)
    return create_app(engine=engine, testing=True).test_client()


def test_a_huge_image_id_is_not_found_not_a_crash(client):
    for path in ("/images/results/99999999999999999999999.webp", "/images/references/99999999999999999999999.webp"):
        response = client.get(path)
        assert response.status_code == 404 and "Traceback" not in response.get_data(as_text=True)


def test_a_wrong_method_says_which_are_allowed(client):
    response = client.post("/healthz")
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD"}
    assert response.headers["X-Frame-Options"] == "DENY"  # our error page, with our headers


@pytest.mark.parametrize("content, expected", [
    (b'{"ts": "0001-01-01T00:00:00", "service": "s", "region": "r", "outcome": "ok"}\n', ":1: invalid ts"),
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", ":1: nested too deeply"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", ":1: nested too deeply"),
    (b'{"ts": "2026-11-02T10:00:00Z", "service": "ok", "region": "r", "outcome": "ok"}\n'
     b'{"ts": "2026-11-02T10:00:00Z", "service": "\xff\xfe", "region": "r", "outcome": "ok"}\n', ":2: not UTF-8 text"),
])
def test_replay_names_every_bad_line_and_exits_2(tmp_path, capsys, content, expected):
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(content)
    assert main(["replay", str(trace)]) == 2
    err = capsys.readouterr().err
    assert f"{trace}{expected}" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def nesting_provider():
    """A provider whose every answer is JSON nested 200 000 levels deep."""
    from werkzeug.wrappers import Response

    from tests.providers.helpers import serve

    deep = b"[" * 200_000 + b"]" * 200_000

    def app(environ, start_response):
        return Response(deep, status=200, content_type="application/json")(environ, start_response)

    yield from serve(app)


@pytest.mark.parametrize("provider", ["openai", "stability", "replicate", "gemini", "http", "huggingface"])
def test_an_answer_nested_too_deeply_is_the_providers_bad_output_not_our_error(nesting_provider, provider):
    from datetime import timedelta

    from monitor.config import CanaryConfig, ServiceConfig
    from monitor.enums import Outcome
    from probes.registry import adapter_class
    from tests.providers.helpers import probe

    canary = CanaryConfig(id="c", prompt="a red apple", size="1024x1024", seed=7)
    extra = {"replicate": {"model": "owner/model"}, "huggingface": {"model": "black-forest-labs/FLUX.1-schnell"},
             "http": {"options": {"path": "/generate", "body": {"prompt": "{prompt}"}, "image": {"pointer": "/image"}}}}
    svc = ServiceConfig(id=f"deep-{provider}", provider=provider, base_url=f"{nesting_provider}/{provider}",
                        api_key="deep-key-0123456789", canaries=["c"], timeout=timedelta(seconds=5),
                        allow_private_network=True, **extra.get(provider, {}))
    result = probe(adapter_class(provider), svc, canary, score=False)
    assert result.outcome is Outcome.BAD_OUTPUT, (result.outcome, result.error_detail)


def _odd_result():
    from datetime import UTC, datetime

    from monitor.enums import Outcome, ProbeKind
    from monitor.store.record import ResultRecord

    now = datetime.now(UTC)
    return ResultRecord(service="svc", canary="c", region="eu", kind=ProbeKind.CANARY, started_at=now, finished_at=now,
                        outcome=Outcome.SERVER_ERROR, latency_ms={"total": 10.0}, http_status=500,
                        error_detail="upstream said \x00\x00 nothing", request_id="req-\x00" + "r" * 500,
                        model_version="m" * 5000, revised_prompt="a red apple\x00")


def _stored_odd_result(engine):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from monitor.config import parse_config
    from monitor.store.migrate import upgrade
    from monitor.store.models import ProbeResultRow
    from monitor.store.results import ResultStore

    upgrade(engine)
    store = ResultStore(engine)
    store.sync_catalog(parse_config("canaries: [{id: c, prompt: x}]\nservices: [{id: svc, provider: openai, canaries: [c]}]\n",
                                    env={}))
    store.record(_odd_result())
    assert store.spooled == 0  # stored, not spooled as if the database were down
    with Session(engine) as session:
        return session.scalars(select(ProbeResultRow)).one()


def _assert_fitted(row):
    assert row.error_detail == "upstream said  nothing" and "\x00" not in row.revised_prompt
    assert len(row.model_version) == 200 and row.model_version.endswith("…")
    assert len(row.request_id) == 200 and row.request_id.startswith("req-r")


def test_nul_bytes_and_overlong_provider_strings_are_stored_on_sqlite(tmp_path):
    from monitor.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'odd.db'}")
    _assert_fitted(_stored_odd_result(engine))
    engine.dispose()


@pytest.mark.postgres
def test_nul_bytes_and_overlong_provider_strings_are_stored_on_postgresql(pg_engine):
    _assert_fitted(_stored_odd_result(pg_engine))


def _png_header_only(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG that claims its size and depth but carries no pixel data: what a bomb looks like to the header reader."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height, bit_depth, colour_type, what", [
    (8192, 8192, 16, 0, "I;16"),   # 16-bit greyscale: 537 MB as floats for the analysis
    (1, 60_000_000, 8, 2, "strip"),  # a 1 x 60 M strip: under the pixel cap, not a picture
    (6000, 6000, 16, 0, "I;16"),     # 36 MP of 16-bit grey: under the pixel cap, 288 MB to analyse
])
def test_costly_images_are_refused_before_decoding(width, height, bit_depth, colour_type, what):
    import time

    from monitor.scoring.types import Assessment, ScoringInput
    from monitor.scoring.validate import decode_and_validate

    out = Assessment()
    began = time.process_time()
    decode_and_validate(ScoringInput(data=_png_header_only(width, height, bit_depth, colour_type)), out)
    assert "decompression_bomb" in out.flags, (out.flags, out.reasons)
    assert time.process_time() - began < 1.0  # refused from the header, not after a decode (CPU time: load-proof)


def test_a_large_ordinary_picture_still_passes_the_guard():
    from PIL import Image

    from monitor.scoring.validate import _refuse_costly

    _refuse_costly(Image.new("RGB", (2048, 2048)))  # 12 MB: fine


SERVICE = "canaries: [{id: c, prompt: x}]\nservices: [{id: s, provider: openai, canaries: [c]"
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9))
MALFORMED_CONFIGS = [
    (SERVICE + ", interval: .inf}]\n", 2, "longer than 3650 days"),
    (SERVICE + ", interval: 99999999999999d}]\n", 2, "longer than 3650 days"),
    (SERVICE + ", interval: 999999999d}]\n", 2, "longer than 3650 days"),  # passed check-config, then crashed run
    (SERVICE + "}]\nquality: {keep_failing_images: 99999999999999999999}\n", 3, "longer than 3650 days"),
    ("{<<: 5}\n", 1, "merging"),
    ("a: &a [*a]\n", 1, "an alias refers to the value that contains it"),
    (LAUGHS, 1, "more than 50000 values"),
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", 1, "nested too deeply"),
    ("database: 'postgresql://u:pw@host:99999/db'\n" + SERVICE + "}]\n", 1, "port 99999 is not a TCP port"),
    ("database: notaurl\n" + SERVICE + "}]\n", 1, "not a database URL"),
    ("database: 'mysql://u@h/db'\n" + SERVICE + "}]\n", 1, "unsupported database 'mysql'"),
    ("canaries: [{id: c, prompt: x, seed: 12345678901234567890123456}]\n", 1, "seed must be between 0 and 2147483647"),
]


@pytest.mark.parametrize("text, line, message", MALFORMED_CONFIGS)
def test_malformed_configs_get_file_line_and_message_exit_2_quickly(tmp_path, capsys, text, line, message):
    import time

    path = tmp_path / "genstatus.yaml"
    path.write_text(text)
    began = time.process_time()
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line} " in err and message in err and "Traceback" not in err, err
    assert "pw@" not in err  # a password in a bad database URL is not repeated
    assert time.process_time() - began < 5.0  # CPU time, so a busy machine cannot fail it; a hang would blow it


def test_operator_outcomes_and_raw_details_stay_off_the_public_service_page(tmp_path):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from monitor.store.models import ProbeResultRow, Service

    engine = create_engine(f"sqlite:///{tmp_path / 'web.db'}")
    Base.metadata.create_all(engine)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(Service(id="svc", name="svc", group_name="", provider="openai", position=0, active=True))
        for minutes, outcome, detail in ((3, "auth_error", "HTTP 401: key sk-live-abc rejected"),
                                         (2, "probe_error", "RecursionError: maximum recursion depth exceeded"),
                                         (1, "server_error", "<html>nginx at 10.1.2.3:8080</html>")):
            session.add(ProbeResultRow(service_id="svc", region="eu", kind="canary", outcome=outcome,
                                       started_at=now - timedelta(minutes=minutes), error_detail=detail))
    html = create_app(engine=engine, testing=True).test_client().get("/services/svc").get_data(as_text=True)
    assert 'data-outcome="server_error"' in html and "the provider answered with a server error" in html
    assert "auth_error" not in html and "probe_error" not in html
    for leak in ("sk-live-abc", "RecursionError", "10.1.2.3", "nginx"):
        assert leak not in html


def test_a_second_monitor_on_one_sqlite_file_refuses_to_start(tmp_path):
    """Two `genstatus run` on one SQLite file opened two incidents per outage: the second now says why it stops."""
    import os
    import subprocess
    import sys
    import time

    config = tmp_path / "genstatus.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'one.db'}\ncanaries: [{{id: c, prompt: x}}]\n"
                      "services: [{id: s, provider: openai, canaries: [c], interval: 1h, base_url: 'http://127.0.0.1:9',"
                      " allow_private_network: true}]\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--no-web", "-c", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "one.db.lock").exists() or "pid" not in (tmp_path / "one.db.lock").read_text():
            assert time.monotonic() < deadline and first.poll() is None, "the first monitor did not start"
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--no-web", "-c", str(config)],
                                capture_output=True, text=True, env=env, timeout=60)
        assert second.returncode == 2
        assert f"is in use by genstatus pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=60)
    # the lock goes with its process: the next monitor starts (and stops) fine
    from monitor.store.exclusive import SQLiteMonitorLock

    SQLiteMonitorLock(f"sqlite:///{tmp_path / 'one.db'}").acquire().release()


def test_a_key_the_provider_echoes_anywhere_is_redacted_before_it_is_stored():
    import base64
    import io
    import json
    from datetime import timedelta

    from PIL import Image
    from werkzeug.wrappers import Response

    from monitor.config import CanaryConfig, ServiceConfig
    from probes.registry import adapter_class
    from tests.providers.helpers import probe, serve

    key = "sk-echoed-0123456789abcdef"
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(png, format="PNG")

    def app(environ, start_response):
        body = {"created": 1, "model": f"dall-e-3 {key}",
                "data": [{"b64_json": base64.b64encode(png.getvalue()).decode(), "revised_prompt": f"an apple ({key})"}]}
        return Response(json.dumps(body), content_type="application/json",
                        headers={"x-request-id": f"req-{key}"})(environ, start_response)

    server = serve(app)
    base = next(server)
    try:
        svc = ServiceConfig(id="echo", provider="openai", base_url=f"{base}/v1", api_key=key, model="dall-e-3",
                            canaries=["c"], timeout=timedelta(seconds=5), allow_private_network=True)
        result = probe(adapter_class("openai"), svc, CanaryConfig(id="c", prompt="an apple", size="64x64"), score=False)
    finally:
        next(server, None)
    stored = " ".join(str(getattr(result, name)) for name in ("request_id", "model_version", "revised_prompt", "error_detail"))
    assert key not in stored, stored
    assert result.revised_prompt is not None and result.revised_prompt.startswith("an apple")


def test_a_json_answer_of_countless_objects_is_refused_unparsed():
    import tracemalloc
    from datetime import timedelta

    from werkzeug.wrappers import Response

    from monitor.config import CanaryConfig, ServiceConfig
    from monitor.enums import Outcome
    from probes.registry import adapter_class
    from tests.providers.helpers import probe, serve

    body = b'{"data": [' + b"{}," * 2_000_000 + b"{}]}"  # 6 MB, two million empty objects

    def app(environ, start_response):
        return Response(body, content_type="application/json")(environ, start_response)

    server = serve(app)
    base = next(server)
    try:
        svc = ServiceConfig(id="flood", provider="openai", base_url=f"{base}/v1", api_key="flood-key-0123456789",
                            model="dall-e-3", canaries=["c"], timeout=timedelta(seconds=10), allow_private_network=True)
        tracemalloc.start()
        result = probe(adapter_class("openai"), svc, CanaryConfig(id="c", prompt="an apple", size="64x64"), score=False)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        next(server, None)
    assert result.outcome is Outcome.BAD_OUTPUT and "refused unparsed" in (result.error_detail or "")
    assert peak < 100 * 2**20  # parsing it would build two million dicts (several hundred MB)
