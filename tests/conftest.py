"""Shared fixtures: emulator, PostgreSQL, configs.  Fixture modules live beside this file."""

from tests.fixture_emulator import *  # noqa: F401,F403
from tests.fixture_postgres import *  # noqa: F401,F403


def pytest_report_header(config) -> list[str]:
    """Say once, at the top of the run, which optional suites will skip and the command that enables each."""
    import importlib.util
    import os
    import shutil

    from tests.fixture_postgres import find_pg_bindir

    missing = []
    if not os.environ.get("GENSTATUS_TEST_POSTGRES_URL") and find_pg_bindir() is None:
        missing.append("PostgreSQL tests (no initdb/pg_ctl): apt-get install postgresql")
    if shutil.which("chromium") is None:
        missing.append("browser tests (no chromium): apt-get install chromium")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("open_clip") is None:
        missing.append("CLIP tests (no torch/open_clip): pip install torch==2.13.0 torchvision==0.28.0 -e '.[clip]'")
    if not missing:
        return ["optional suites: all enabled (PostgreSQL, browser, CLIP)"]
    return ["optional suites that will skip:", *(f"  - {line}" for line in missing)]
