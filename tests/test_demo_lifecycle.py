"""`genstatus demo` start and stop: ``--emulator-port`` points the demo's services at that port, and
stopping stores nothing from the shutdown (probes stop before the emulator they probe).

In-process, with the demo's own ``Demo`` parts, so the database can be read after the stop.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from monitor.cli import main
from monitor.cli.common import UsageError
from monitor.cli.demo import Demo
from monitor.store.db import make_engine
from monitor.store.models import ProbeResultRow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outcomes(db_url: str, since=None) -> Counter[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            query = select(ProbeResultRow.outcome, func.count()).group_by(ProbeResultRow.outcome)
            if since is not None:
                query = query.where(ProbeResultRow.id > since)
            return Counter(dict(connection.execute(query).all()))
    finally:
        engine.dispose()


def last_id(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.max(ProbeResultRow.id))).scalar() or 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_emulator_port_and_a_stop_that_stores_nothing_from_the_shutdown(tmp_path):
    port = free_port()
    # a 1 s interval keeps several probes in flight at any moment, so the stop always cuts some short
    demo = Demo(port=0, interval="1s", scenario="none", emulator_port=port, workdir=tmp_path)
    db_url = demo.config.database
    try:
        assert demo.emulator.url == f"http://127.0.0.1:{port}"
        assert all(str(s.base_url).startswith(f"http://127.0.0.1:{port}/s/{s.id}/") for s in demo.config.services)
        assert any(f"http://127.0.0.1:{port}/_faults/" in line for line in demo.describe())
        demo.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(outcomes(db_url).values()) < 4 * len(demo.config.services):
            time.sleep(0.5)
        healthy = outcomes(db_url)
        before_stop = last_id(db_url)
    finally:
        demo.stop()
    # a healthy run: every service answered on the chosen port, no connection errors at all
    assert healthy["ok"] >= 4 * len(demo.config.services), healthy
    assert healthy["connection_error"] == 0, healthy
    # and nothing measured the shutdown: no connection error stored after the stop began
    everything = outcomes(db_url)
    assert everything["connection_error"] == 0, (everything, outcomes(db_url, since=before_stop))
    assert (tmp_path / "demo.db").exists()  # a workdir handed in is the caller's to delete


def test_a_taken_emulator_port_is_a_usage_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot serve the emulator on 127.0.0.1:{port}.*--emulator-port"):
            Demo(emulator_port=port, scenario="none")
        assert main(["demo", "--port", "0", "--scenario", "none", "--emulator-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve the emulator on 127.0.0.1:{port}" in err and "Traceback" not in err
    assert main(["demo", "--port", "0", "--emulator-port", "70000"]) == 2
    assert "--emulator-port: 70000 is not a port number" in capsys.readouterr().err
