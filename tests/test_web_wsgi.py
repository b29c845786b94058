"""``web.wsgi``: the app other WSGI servers (gunicorn) load, built from ``$GENSTATUS_CONFIG``."""

from __future__ import annotations

import importlib
import sys

import pytest

from monitor.config import ConfigError
from monitor.store.models import Base


def _import_wsgi():
    if "web.wsgi" in sys.modules:
        return importlib.reload(sys.modules["web.wsgi"])
    return importlib.import_module("web.wsgi")


def test_wsgi_app_is_built_from_the_config_named_by_the_environment(tmp_path, monkeypatch):
    db = tmp_path / "wsgi.db"
    config = tmp_path / "status.yaml"
    config.write_text(
        "site: {title: 'WSGI <Status>', timezone: Europe/Berlin}\n"
        f"database: sqlite:///{db}\n"
        "canaries:\n  - {id: apple, prompt: a red apple}\n"
        "services:\n  - {id: svc, name: Service, provider: openai, canaries: [apple]}\n"
    )
    monkeypatch.setenv("GENSTATUS_CONFIG", str(config))
    monkeypatch.delenv("GENSTATUS_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # never the ./genstatus.yaml of wherever the tests run

    wsgi = _import_wsgi()
    engine = wsgi.app.extensions["genstatus"].engine
    try:
        assert str(engine.url) == f"sqlite:///{db}"
        Base.metadata.create_all(engine)
        client = wsgi.app.test_client()
        response = client.get("/healthz")
        assert (response.status_code, response.get_json()) == (200, {"status": "ok"})
        html = client.get("/").get_data(as_text=True)
        assert "<title>WSGI &lt;Status&gt;</title>" in html and 'data-service="svc"' in html
    finally:
        engine.dispose()


def test_wsgi_without_a_config_file_fails_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSTATUS_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml"):
        _import_wsgi()
