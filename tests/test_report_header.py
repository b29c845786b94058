"""The run's header says which optional suites will skip, and the one command that enables each."""

from __future__ import annotations

import importlib.util
import shutil

from tests import conftest, fixture_postgres


def test_the_header_names_each_missing_suite_and_its_command(monkeypatch):
    monkeypatch.delenv("GENSTATUS_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setattr(fixture_postgres, "find_pg_bindir", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    lines = conftest.pytest_report_header(None)
    assert lines[0] == "optional suites that will skip:"
    assert any("apt-get install postgresql" in line for line in lines)
    assert any("apt-get install chromium" in line for line in lines)
    assert any("pip install torch==2.13.0" in line for line in lines)


def test_the_header_says_when_every_suite_runs(monkeypatch):
    monkeypatch.setenv("GENSTATUS_TEST_POSTGRES_URL", "postgresql://example/test")
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert conftest.pytest_report_header(None) == ["optional suites: all enabled (PostgreSQL, browser, CLIP)"]
