"""HTTP caching and compression (``web.caching``): ETag and 304, Cache-Control, gzip and Vary, nothing
cached for admin or session answers, and the render cache with its invalidation."""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Response
from flask import session as flask_session

from monitor.store.models import Incident, Maintenance
from tests.webdb import add_result, add_service, engine, session  # noqa: F401 - fixtures
from web import caching, create_app
from web.caching import MIN_COMPRESS_BYTES, RenderCache, Rendered, cached_view

NOW = datetime.now(UTC).replace(microsecond=0)
BIG = "<p>" + "All systems operational. " * 200 + "</p>"  # well over MIN_COMPRESS_BYTES
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def app(engine):
    app = create_app(engine=engine, testing=True)
    app.secret_key = "test secret"
    calls: dict[str, int] = {}
    app.config["calls"] = calls

    def counted(name: str, body: str = BIG) -> str:
        calls[name] = calls.get(name, 0) + 1
        return body

    @app.get("/test/page")
    @cached_view(seconds=5)
    def page() -> str:
        return counted("page")

    @app.get("/test/status")
    @cached_view(seconds=5, on_results=False)
    def status() -> str:
        return counted("status")

    @app.get("/test/reads-session")
    @cached_view(seconds=5)
    def reads_session() -> str:
        return counted("reads-session", f"{BIG}{flask_session.get('user', 'anonymous')}")

    @app.get("/test/json")
    def json_view() -> dict:
        return {"items": ["x" * 50] * 40}

    @app.get("/admin/secret")
    def admin() -> str:
        return BIG

    @app.get("/test/login")
    def login() -> str:
        flask_session["user"] = "alice"
        return BIG

    @app.get("/test/cookie")
    def cookie() -> Response:
        response = Response(BIG, mimetype="text/html")
        response.set_cookie("pref", "1")
        return response

    @app.get("/test/fail")
    def fail() -> tuple[str, int]:
        return BIG, 503

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def calls(app, name: str) -> int:
    return app.config["calls"].get(name, 0)


# -- ETag, 304, Cache-Control -------------------------------------------------------------------


def test_public_pages_get_a_short_max_age_and_an_etag_honoured_with_304(session, client):
    add_service(session, "svc")
    assert client.get("/").headers["Cache-Control"] == "public, max-age=30"  # the status page itself
    first = client.get("/test/page")  # a page whose body does not show the clock
    assert first.status_code == 200 and first.mimetype == "text/html"
    assert first.headers["Cache-Control"] == "public, max-age=30"
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = client.get("/test/page", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "public, max-age=30"
    assert "Accept-Encoding" in again.headers["Vary"]
    other = client.get("/test/page", headers={"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200 and other.data == first.data


def test_json_gets_an_etag_that_follows_the_body(client):
    first = client.get("/test/json")
    assert first.headers["Cache-Control"] == "public, max-age=30"
    assert client.get("/test/json", headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get("/test/page").headers["ETag"] != first.headers["ETag"]


def test_a_view_that_chose_its_own_cache_control_keeps_it(session, client):
    add_service(session, "svc")
    assert client.get("/badge/svc.svg").headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize("path", ["/admin/secret", "/test/login", "/test/cookie"])
def test_admin_session_and_cookie_answers_are_never_stored_nor_compressed(client, path):
    response = client.get(path, headers=GZIP)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "ETag" not in response.headers
    assert "Content-Encoding" not in response.headers  # secrets next to reflected input: no compression oracle
    assert response.get_data(as_text=True) == BIG


def test_requests_with_authorization_and_server_errors_are_not_cached(client):
    assert client.get("/test/json", headers={"Authorization": "Bearer x"}).headers["Cache-Control"] == "no-store"
    failed = client.get("/test/fail")
    assert failed.status_code == 503 and failed.headers["Cache-Control"] == "no-store" and "ETag" not in failed.headers


# -- compression ----------------------------------------------------------------------------------


def test_gzip_for_clients_that_accept_it(client):
    plain = client.get("/test/page")
    assert "Content-Encoding" not in plain.headers
    assert "Accept-Encoding" in plain.headers["Vary"]
    zipped = client.get("/test/page", headers=GZIP)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(plain.data)
    assert gzip.decompress(zipped.data) == plain.data
    assert zipped.headers["ETag"] == plain.headers["ETag"]  # weak: the same content in either encoding
    refused = client.get("/test/page", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers


def test_json_is_compressed_small_answers_are_not(client):
    zipped = client.get("/test/json", headers=GZIP)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == client.get("/test/json").data
    small = client.get("/healthz", headers=GZIP)
    assert len(small.data) < MIN_COMPRESS_BYTES and "Content-Encoding" not in small.headers


def test_static_css_is_compressed_and_its_etag_becomes_weak(client):
    css = (Path(__file__).resolve().parents[1] / "web" / "static" / "style.css").read_bytes()
    assert len(css) > MIN_COMPRESS_BYTES
    zipped = client.get("/static/style.css", headers=GZIP)
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == css
    assert zipped.headers["ETag"].startswith('W/"')
    assert client.get("/static/style.css", headers={"If-None-Match": zipped.headers["ETag"]}).status_code == 304


def test_feeds_and_badges_are_compressed_too(session, client):
    add_service(session, "svc", "x" * 30)
    for n in range(5):
        session.add(Incident(service_id="svc", kind="outage", impact="major", title=f"Outage number {n} " * 5,
                             started_at=NOW - timedelta(days=n + 1), detected_at=NOW - timedelta(days=n + 1),
                             resolved_at=NOW - timedelta(days=n)))
    session.commit()
    for path in ("/feed.atom", "/feed.rss"):
        zipped = client.get(path, headers=GZIP)
        assert zipped.headers["Content-Encoding"] == "gzip", path
        assert gzip.decompress(zipped.data) == client.get(path).data


# -- the render cache -----------------------------------------------------------------------------


def test_render_cache_serves_repeats_and_renders_afresh_after_a_change(app, session, client):
    add_service(session, "svc")
    assert client.get("/test/page").get_data(as_text=True) == BIG
    client.get("/test/page")
    client.get("/test/page", headers=GZIP)
    assert calls(app, "page") == 1  # one render for three requests

    session.add(Incident(service_id="svc", kind="outage", impact="major", title="t", started_at=NOW, detected_at=NOW))
    session.commit()
    client.get("/test/page")
    assert calls(app, "page") == 2  # a new incident: rendered again at once, no waiting for the TTL

    add_result(session, "svc", "eu", "ok", NOW)
    client.get("/test/page")
    assert calls(app, "page") == 3  # a new probe result

    session.add(Maintenance(title="m", starts_at=NOW, ends_at=NOW + timedelta(hours=1)))
    session.commit()
    client.get("/test/page")
    assert calls(app, "page") == 4  # a new maintenance window
    client.get("/test/page")
    assert calls(app, "page") == 4


def test_a_status_view_is_not_re_rendered_for_each_new_result(app, session, client, monkeypatch):
    """A busy monitor stores results every second: views that follow incidents keep their render for
    their few seconds, and still render afresh at once on a new incident."""
    clock = [1000.0]
    monkeypatch.setattr(caching, "monotonic", lambda: clock[0])
    add_service(session, "svc")
    client.get("/test/status")
    add_result(session, "svc", "eu", "ok", NOW)
    client.get("/test/status")
    assert calls(app, "status") == 1
    clock[0] += 5.1
    client.get("/test/status")
    assert calls(app, "status") == 2  # the new result shows once the seconds pass
    session.add(Incident(service_id="svc", kind="outage", impact="major", title="t", started_at=NOW, detected_at=NOW))
    session.commit()
    client.get("/test/status")
    assert calls(app, "status") == 3


def test_render_cache_expires(app, client, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(caching, "monotonic", lambda: clock[0])
    client.get("/test/page")
    clock[0] += 4.9
    client.get("/test/page")
    assert calls(app, "page") == 1
    clock[0] += 0.2
    client.get("/test/page")
    assert calls(app, "page") == 2


def test_render_cache_keys_on_the_query_in_any_order(app, client):
    client.get("/test/page?a=1&b=2")
    client.get("/test/page?b=2&a=1")
    assert calls(app, "page") == 1
    client.get("/test/page?a=2&b=2")
    assert calls(app, "page") == 2


def test_render_cache_never_keeps_or_serves_session_pages(app, client):
    client.get("/test/reads-session")
    client.get("/test/reads-session")
    assert calls(app, "reads-session") == 2  # the view read the session: never kept
    client.get("/test/page")
    client.get("/test/login")  # now the client carries a session cookie
    assert "alice" in client.get("/test/reads-session").get_data(as_text=True)
    client.get("/test/page")
    assert calls(app, "page") == 2  # a request with a session is rendered for itself


def test_each_app_has_its_own_render_cache(engine):
    one, two = create_app(engine=engine, testing=True), create_app(engine=engine, testing=True)
    assert caching.render_cache(one) is not caching.render_cache(two)


def test_render_cache_is_a_bounded_lru():
    cache = RenderCache(max_entries=2)
    entry = Rendered(200, [], b"x", expires=100.0)
    cache.put("a", entry)
    cache.put("b", entry)
    assert cache.get("a", now=1.0) is entry  # "a" is now the most recently used
    cache.put("c", entry)
    assert cache.get("b", now=1.0) is None and cache.get("a", now=1.0) is entry and len(cache) == 2
    assert cache.get("a", now=100.0) is None and len(cache) == 1  # expired entries are dropped


def test_render_cache_under_concurrent_use():
    cache = RenderCache(max_entries=50)
    errors: list[BaseException] = []

    def hammer(worker: int) -> None:
        try:
            for n in range(2000):
                key = (worker, n % 80)
                if cache.get(key, now=0.0) is None:
                    cache.put(key, Rendered(200, [], b"x", expires=1.0))
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cache) == 50
    assert cache.hits + cache.misses == 8 * 2000


def test_a_render_cache_hit_is_served_gzipped_with_the_same_etag_without_compressing_again(app, client, monkeypatch):
    first = client.get("/test/page", headers=GZIP)
    compressed = []
    real = gzip.compress
    monkeypatch.setattr(caching.gzip, "compress", lambda *a, **k: compressed.append(1) or real(*a, **k))
    second = client.get("/test/page", headers=GZIP)
    third = client.get("/test/page", headers=GZIP)
    assert calls(app, "page") == 1 and len(compressed) == 1  # compressed once for the kept answer, not per hit
    assert first.headers["ETag"] == second.headers["ETag"] == third.headers["ETag"]
    assert second.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in second.headers["Vary"]
    assert gzip.decompress(second.data) == gzip.decompress(first.data) == BIG.encode()
    assert client.get("/test/page", headers={"If-None-Match": first.headers["ETag"], **GZIP}).status_code == 304
    assert client.get("/test/page").data == BIG.encode()  # and plain to a client that does not take gzip
