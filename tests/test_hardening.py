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
