"""download_image against a small loopback image host: redirects, limits, address checks."""

from __future__ import annotations

import base64
import importlib
import ipaddress
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import probes.download as download
from monitor.config import ServiceConfig
from monitor.enums import Outcome
from probes.base import ProbeContext, ProbeFailure
from probes.download import download_image
from probes.emulator.images import encode_png, render_image
from probes.http import make_client

PNG = encode_png(render_image("download test", 0, "test", 64, 64))
AZURE_EXPIRED = (
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to '
    "authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.\n"
    "RequestId:1b2c\nTime:2026-12-02T10:00:00.0000000Z</Message><AuthenticationErrorDetail>Signed expiry time "
    "[Wed, 02 Dec 2026 09:00:00 GMT] must be after signed start time</AuthenticationErrorDetail></Error>"
)
S3_EXPIRED = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired'
              "</Message><X-Amz-Expires>3600</X-Amz-Expires><RequestId>7F3A</RequestId></Error>")
#: an entity-expansion bomb: read by a bounded regex, never by an XML parser
XML_BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
            "<Error><Code>&lol2;</Code><Message>&lol2;</Message></Error>")
seen_hosts: list[str] = []


def slow_body() -> Iterator[bytes]:
    yield PNG[:100]
    for _ in range(10):
        time.sleep(0.2)
        yield b"\0" * 100


def streamed_body() -> Iterator[bytes]:
    for _ in range(10):
        yield b"\0" * 1000


@Request.application
def image_host(request: Request) -> Response:
    seen_hosts.append(request.host)
    path = request.path
    if path == "/png":
        return Response(PNG, mimetype="image/png")
    if path == "/octet":
        return Response(PNG, mimetype="application/octet-stream")
    if path == "/html":
        return Response("<html>Access denied</html>", mimetype="text/html")
    if path == "/junk":
        return Response(b"\x00not an image" * 10, mimetype="application/octet-stream")
    if path == "/truncated":
        return Response(PNG[: len(PNG) // 2], mimetype="image/png")
    if path == "/big":
        return Response(PNG + b"\0" * 4096, mimetype="image/png")
    if path == "/big-streamed":  # no Content-Length: the cap must hold while reading
        return Response(streamed_body(), mimetype="image/png")
    if path == "/slow":
        return Response(slow_body(), mimetype="image/png")
    if path == "/azure-expired":
        return Response(AZURE_EXPIRED, status=403, mimetype="application/xml")
    if path == "/s3-expired":
        return Response(S3_EXPIRED, status=403, mimetype="application/xml")
    if path == "/xml-bomb":
        return Response(XML_BOMB, status=403, mimetype="application/xml")
    if path == "/huge-error":  # a 403 whose body never ends: only its head is read
        return Response(streamed_body(), status=403, mimetype="application/xml")
    if path == "/throttled":
        return Response("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                        status=429, mimetype="application/xml")
    if path.startswith("/status/"):
        return Response("no", status=int(path.rsplit("/", 1)[1]))
    if path == "/to-file":
        return Response(status=302, headers={"Location": "file:///etc/passwd"})
    if path == "/loop":
        return Response(status=302, headers={"Location": "/loop"})
    if path.startswith("/hops/"):
        left = int(path.rsplit("/", 1)[1])
        return Response(status=307, headers={"Location": f"/hops/{left - 1}" if left > 1 else "/png"})
    return Response("not found", status=404)


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, image_host, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def fetch(url: str, *, private: bool = True, max_bytes: int = 1024 * 1024, deadline_s: float = 5) -> tuple[bytes, str | None]:
    service = ServiceConfig(
        id="dl", provider="openai", canaries=["c"], timeout=timedelta(seconds=5),
        allow_private_network=private, max_image_bytes=max_bytes,
    )
    with make_client(service) as client:
        ctx = ProbeContext(service, None, client, deadline_s=deadline_s)
        image = download_image(ctx, url)
        assert ctx.phases["download"] > 0
        return image


def failure(url: str, **kwargs) -> ProbeFailure:
    with pytest.raises(ProbeFailure) as caught:
        fetch(url, **kwargs)
    return caught.value


def test_plain_download(host):
    assert fetch(f"http://{host}/png") == (PNG, "image/png")


def test_generic_content_type_is_judged_by_magic_bytes(host):
    assert fetch(f"http://{host}/octet") == (PNG, "image/png")


def test_private_address_refused_without_the_flag(host):
    error = failure(f"http://{host}/png", private=False)
    assert error.outcome is Outcome.PROBE_ERROR
    assert "127.0.0.1" in error.detail and "allow_private_network: true" in error.detail


def test_checked_address_is_pinned(host, monkeypatch):
    """With the check passing, the request goes to the checked IP and keeps the original Host."""
    monkeypatch.setattr(download, "is_public_address", lambda address: True)
    port = host.rsplit(":", 1)[1]
    seen_hosts.clear()
    assert fetch(f"http://localhost:{port}/png", private=False)[0] == PNG
    assert seen_hosts == [f"localhost:{port}"]


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1", "0.0.0.0"])
def test_non_public_addresses(address):
    assert not download.is_public_address(ipaddress.ip_address(address))


def test_public_address():
    assert download.is_public_address(ipaddress.ip_address("93.184.216.34"))


@pytest.mark.parametrize("path", ["/big", "/big-streamed"])
def test_size_cap(host, path):
    error = failure(f"http://{host}{path}", max_bytes=len(PNG) + 100)
    assert error.outcome is Outcome.BAD_OUTPUT and "max_image_bytes" in error.detail


@pytest.mark.parametrize(
    "status, outcome",
    [(404, Outcome.BAD_OUTPUT), (410, Outcome.BAD_OUTPUT), (403, Outcome.BAD_OUTPUT), (400, Outcome.BAD_OUTPUT),
     (401, Outcome.BAD_OUTPUT), (503, Outcome.SERVER_ERROR), (204, Outcome.BAD_OUTPUT)],
)
def test_status_codes(host, status, outcome):
    error = failure(f"http://{host}/status/{status}")
    assert error.outcome is outcome and error.http_status == status
    if status == 404:
        assert "expired or missing" in error.detail


@pytest.mark.parametrize(
    "path, code, message",
    [("/azure-expired", "AuthenticationFailed", "Server failed to authenticate the request."),
     ("/s3-expired", "AccessDenied", "Request has expired")],
)
def test_expired_signed_url_is_bad_output_with_the_stores_reason(host, path, code, message):
    """A 4xx on the URL the provider returned is the provider's output failing, not our request (client_error)."""
    error = failure(f"http://{host}{path}")
    assert error.outcome is Outcome.BAD_OUTPUT and error.http_status == 403
    assert f"answered HTTP 403 {code}: {message}" in error.detail
    assert "signed URL expired" in error.detail
    assert "RequestId" not in error.detail  # Azure's message is cut to its first line


def test_store_error_bodies_are_read_bounded_and_never_parsed_as_xml(host):
    bomb = failure(f"http://{host}/xml-bomb")
    assert bomb.outcome is Outcome.BAD_OUTPUT and "lollol" not in bomb.detail  # no entity expanded
    assert len(bomb.detail) < 400
    endless = failure(f"http://{host}/huge-error")
    assert endless.outcome is Outcome.BAD_OUTPUT and endless.http_status == 403


def test_error_fields():
    assert download.error_fields(S3_EXPIRED.encode()) == ("AccessDenied", "Request has expired")
    assert download.error_fields(b"<html>nope</html>") == ("", "")
    assert download.error_fields(b"<Error><Code>Bad Code\x07<x></Code><Message>  </Message></Error>") == ("", "")
    code, message = download.error_fields(b"<Code>" + b"A" * 5000 + b"</Code>")
    assert code == "" and message == ""  # longer than a code can be: not quoted


def test_store_rate_limit_is_rate_limited(host):
    error = failure(f"http://{host}/throttled")
    assert error.outcome is Outcome.RATE_LIMITED and "SlowDown" in error.detail


@pytest.mark.parametrize("path, text", [("/html", "not an image"), ("/junk", "not a PNG"), ("/truncated", "truncated")])
def test_non_images_are_bad_output(host, path, text):
    error = failure(f"http://{host}{path}")
    assert error.outcome is Outcome.BAD_OUTPUT and text in error.detail


def test_redirects_are_followed_up_to_the_limit(host):
    assert fetch(f"http://{host}/hops/5")[0] == PNG
    assert "more than 5" in failure(f"http://{host}/hops/6").detail
    assert failure(f"http://{host}/loop").outcome is Outcome.BAD_OUTPUT


def test_redirect_to_other_scheme_refused(host):
    error = failure(f"http://{host}/to-file")
    assert error.outcome is Outcome.BAD_OUTPUT and "only http and https" in error.detail


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "javascript:alert(1)"])
def test_other_schemes_refused(url):
    assert failure(url).outcome is Outcome.BAD_OUTPUT


def test_deadline_checked_while_streaming(host):
    began = time.monotonic()
    with pytest.raises((ProbeFailure, httpx.TimeoutException)) as caught:
        fetch(f"http://{host}/slow", deadline_s=0.5)
    assert time.monotonic() - began < 1.5
    if isinstance(caught.value, ProbeFailure):
        assert caught.value.outcome is Outcome.TIMEOUT


def test_data_uri():
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert fetch(uri) == (PNG, "image/png")


@pytest.mark.parametrize(
    "uri, text",
    [
        ("data:text/plain;base64,aGVsbG8=", "not an image"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:image/png;base64,!!!notbase64", "not valid base64"),
        ("data:image/png;base64,aGVsbG8gd29ybGQ=", "not a PNG"),
    ],
)
def test_bad_data_uris(uri, text):
    error = failure(uri)
    assert error.outcome is Outcome.BAD_OUTPUT and text in error.detail


@pytest.mark.parametrize("provider", ["openai", "replicate", "bfl", "fal", "midjourney_proxy", "comfyui", "http"])
def test_every_adapter_fetches_provider_urls_through_the_shared_download(provider):
    """So an expired signed URL is ``bad_output`` with the store's reason for every provider, not just OpenAI."""
    module = importlib.import_module(f"probes.providers.{provider}")
    assert module.download_image is download.download_image
