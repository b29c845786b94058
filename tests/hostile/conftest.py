"""The subprocess baseline every hostile subprocess run is measured against."""

from __future__ import annotations

import pytest

from tests.hostile.support import run_measured


@pytest.fixture(scope="session")
def cli_start():
    """``genstatus --help`` in a subprocess (the cheaper of two): start-up CPU time and memory of the command line."""
    runs = [run_measured("--help", timeout=120) for _ in range(2)]
    assert all(run.code == 0 for run in runs), runs
    return min(runs, key=lambda run: run.seconds)
