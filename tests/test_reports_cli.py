"""``genstatus report``: a week of generated history in all three formats, sending once, and the exit codes.

The figures checked here are computed in the test from the results it generates (availability per
service) and the incident it stores (duration, time to detect), not by the report's code.
"""

from __future__ import annotations

import io
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from sqlalchemy.orm import Session

from monitor.cli import main
from monitor.enums import DOWN_OUTCOMES, OPERATOR_OUTCOMES, Outcome, ProbeKind
from monitor.reports import archive
from monitor.reports.weeks import last_completed_week, parse_week, week_of
from monitor.store.db import make_engine
from monitor.store.migrate import upgrade
from monitor.store.models import Incident
from monitor.store.record import ResultRecord
from monitor.store.results import ResultStore
from tests.alerts.test_email import Server, free_port, server  # noqa: F401

WEEK = "2026-W40"  # Monday 28 Sep to Sunday 4 Oct 2026, UTC
START = datetime(2026, 9, 28, tzinfo=UTC)
STEP = timedelta(minutes=15)
REGIONS = ("eu-west", "us-east")
INCIDENT = dict(started_at=START + timedelta(days=2, hours=10), detected_at=START + timedelta(days=2, hours=10, seconds=130),
                resolved_at=START + timedelta(days=2, hours=10, minutes=47))
#: service -> chance of a down outcome per run (flux also has one probe error, which never counts)
DOWN_CHANCE = {"dalle3": 0.002, "flux": 0.03}


def write_config(tmp_path: Path, *, channels: list[dict[str, Any]] = (), weekly: dict[str, Any] | None = None) -> Path:
    document: dict[str, Any] = {
        "site": {"title": "Imaging Status", "url": "https://status.example.com", "timezone": "UTC"},
        "database": f"sqlite:///{tmp_path / 'history.db'}",
        "region": "eu-west",
        "canaries": [{"id": "apple", "prompt": "a red apple on a table"}],
        "services": [{"id": sid, "name": name, "group": "Text to image", "provider": "openai",
                      "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test", "model": "dall-e-3",
                      "canaries": ["apple"], "interval": "15m", "cost_per_image": 0.04, "monthly_budget": 200,
                      "slo": {"availability": 99.5}}
                     for sid, name in (("dalle3", "DALL·E 3"), ("flux", "FLUX.1 pro"))],
        "alerts": {"channels": list(channels)},
    }
    if weekly is not None:
        document["reports"] = {"weekly": weekly}
    path = tmp_path / "genstatus.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, list[ResultRecord]]]:
    """A week (and the one before, for the comparisons) of results every 15 minutes per region."""
    folder = tmp_path_factory.mktemp("history")
    config = write_config(folder)
    engine = make_engine(f"sqlite:///{folder / 'history.db'}")
    upgrade(engine)
    rng = random.Random(47)
    runs: dict[str, list[ResultRecord]] = {sid: [] for sid in DOWN_CHANCE}
    at = START - timedelta(days=7)
    while at < START + timedelta(days=7):
        for sid, chance in DOWN_CHANCE.items():
            for region in REGIONS:
                outcome = Outcome.SERVER_ERROR if rng.random() < chance else Outcome.OK
                if sid == "flux" and at == START + timedelta(days=1) and region == "eu-west":
                    outcome = Outcome.AUTH_ERROR  # our key: never counted against the provider
                runs[sid].append(ResultRecord(service=sid, canary="apple", region=region, kind=ProbeKind.CANARY,
                                              started_at=at, finished_at=at + timedelta(seconds=9), outcome=outcome,
                                              latency_ms={"total": 4000.0 + rng.random() * 6000}, cost=0.04,
                                              quality_score=0.9 if outcome == Outcome.OK else None))
        at += STEP
    store = ResultStore(engine)
    from monitor.config import load_config

    store.sync_catalog(load_config(config))
    for sid in runs:
        store.record_many(runs[sid])
    with Session(engine) as session, session.begin():
        session.add(Incident(service_id="flux", kind="outage", audience="public", impact="major", status="resolved",
                             title="FLUX.1 pro: major outage", regions=["eu-west"], **INCIDENT))
    engine.dispose()
    return config, runs


def expected_availability(runs: list[ResultRecord]) -> float:
    in_week = [r for r in runs if START <= r.started_at < START + timedelta(days=7)]
    counted = [r for r in in_week if r.outcome not in OPERATOR_OUTCOMES]
    down = [r for r in counted if r.outcome in DOWN_OUTCOMES]
    return 100 * (1 - len(down) / len(counted))


def floor2(value: float) -> str:
    return "100%" if value >= 100 else f"{int(value * 100) / 100:.2f}%"


def run(*args: str | Path) -> int:
    return main([str(a) for a in args])


# -- the three formats -------------------------------------------------------------------------------------


def test_markdown_to_stdout_by_default(history, capsys) -> None:
    config, runs = history
    assert run("report", "-c", config, "--week", WEEK) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Imaging Status: weekly reliability report {WEEK}\n")
    for sid, name in (("dalle3", "DALL·E 3"), ("flux", "FLUX.1 pro")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} | **"))
        assert row.split(" | ")[1] == f"**{floor2(expected_availability(runs[sid]))}**", row
    incident = next(line for line in text.splitlines() if line.startswith("| FLUX.1 pro: major outage |"))
    assert "| 47 min | 2 min 10 s | 44 min |" in incident  # duration, to detect, to resolve (47 min - 130 s)


def test_json_follows_the_raw_results(history, tmp_path) -> None:
    config, runs = history
    out = tmp_path / "week.json"
    assert run("report", "-c", config, "--week", WEEK, "--output", out) == 0  # format from the extension
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["schema"] == "genstatus.weekly-report/v1" and document["week"] == WEEK
    services = {s["id"]: s for s in document["services"]}
    for sid in runs:
        assert services[sid]["availability_pct"] == pytest.approx(expected_availability(runs[sid]), abs=1e-6)
    assert services["flux"]["operator_errors"] == 1
    [incident] = document["incidents"]
    assert incident["time_to_detect_s"] == 130 and incident["duration_s"] == 47 * 60
    assert incident["started_at"] == "2026-09-30T10:00:00Z"


def test_html_with_its_charts_beside_it(history, tmp_path) -> None:
    config, _ = history
    out = tmp_path / "weekly.html"
    assert run("report", "-c", config, "--week", WEEK, "--format", "html", "--output", out) == 0
    html = out.read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources == ["weekly-availability.png", "weekly-latency.png", "weekly-quality.png"]
    for source in sources:
        assert Image.open(io.BytesIO((tmp_path / source).read_bytes())).format == "PNG"
    assert "FLUX.1 pro: major outage" in html and "<style" not in html


def test_html_on_stdout_is_self_contained(history, capsys) -> None:
    config, _ = history
    assert run("report", "-c", config, "--week", WEEK, "--format", "html") == 0
    sources = re.findall(r'<img src="([^"]+)"', capsys.readouterr().out)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)


def test_the_default_week_is_the_last_completed_one(history, capsys) -> None:
    config, _ = history
    before = last_completed_week(datetime.now(UTC), "UTC")
    assert run("report", "-c", config, "--format", "json") == 0
    after = last_completed_week(datetime.now(UTC), "UTC")
    assert json.loads(capsys.readouterr().out)["week"] in {str(before), str(after)}


# -- sending -----------------------------------------------------------------------------------------------


def mail_channel(port: int) -> dict[str, Any]:
    return {"id": "mail", "type": "email", "to": ["managers@example.com"],
            "smtp": {"host": "127.0.0.1", "port": port, "starttls": False, "timeout": "5s"}}


def copy_history(history, tmp_path: Path, **config: Any) -> Path:
    source, _ = history
    (tmp_path / "history.db").write_bytes((source.parent / "history.db").read_bytes())
    return write_config(tmp_path, **config)


def test_send_goes_out_once(history, tmp_path, server: Server, capsys) -> None:  # noqa: F811
    config = copy_history(history, tmp_path, channels=[mail_channel(server.port)], weekly={"channels": ["mail"]})
    out = tmp_path / "sent.md"
    assert run("report", "-c", config, "--week", WEEK, "--send", "--output", out) == 0
    assert "report 2026-W40 → mail: sent" in capsys.readouterr().out
    assert len(server.handler.messages) == 1
    assert out.read_text(encoding="utf-8").startswith("# Imaging Status: weekly reliability report 2026-W40")

    assert run("report", "-c", config, "--week", WEEK, "--send") == 0
    assert "already sent" in capsys.readouterr().out
    assert len(server.handler.messages) == 1
    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    stored = archive.load(engine, WEEK)
    engine.dispose()
    assert stored is not None and stored.sent_at is not None and "FLUX.1 pro: major outage" in stored.html


def test_a_failed_send_exits_1_and_is_recorded(history, tmp_path, capsys) -> None:
    config = copy_history(history, tmp_path, channels=[mail_channel(free_port())], weekly={"channels": ["mail"]})
    assert run("report", "-c", config, "--week", WEEK, "--send") == 1
    assert "report 2026-W40 → mail: FAILED, temporary" in capsys.readouterr().out
    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    stored = archive.load(engine, WEEK)
    engine.dispose()
    assert stored is not None and stored.sent_at is None and "127.0.0.1" in (stored.send_error or "")


# -- usage and config errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("week", ["2026-W54", "2026-47", "last week", "2999-W01"])
def test_bad_weeks_are_usage_errors(history, week, capsys) -> None:
    config, _ = history
    assert run("report", "-c", config, "--week", week) == 2
    assert capsys.readouterr().err.startswith("genstatus: ")


def test_send_errors_are_usage_errors(history, tmp_path, capsys) -> None:
    this_week = str(week_of(datetime.now(UTC), "UTC"))
    config = copy_history(history, tmp_path, channels=[mail_channel(free_port())], weekly={"channels": ["mail"]})
    assert run("report", "-c", config, "--week", this_week, "--send") == 2
    assert "not over yet" in capsys.readouterr().err

    no_channels = copy_history(history, tmp_path, weekly={"channels": []})
    assert run("report", "-c", no_channels, "--week", WEEK, "--send") == 2
    assert "reports.weekly.channels" in capsys.readouterr().err

    pager = {"id": "oncall", "type": "pagerduty", "routing_key": "R0123456789abcdef0123456789abcdef"}
    paging = copy_history(history, tmp_path, channels=[pager], weekly={"channels": ["oncall"]})
    assert run("report", "-c", paging, "--week", WEEK, "--send") == 2
    assert "takes no reports" in capsys.readouterr().err

    unknown = copy_history(history, tmp_path, weekly={"channels": ["nope"]})
    assert run("report", "-c", unknown, "--week", WEEK, "--send") == 2
    assert "'nope' is not defined" in capsys.readouterr().err


def test_an_unwritable_output_is_a_usage_error(history, tmp_path, capsys) -> None:
    config, _ = history
    assert run("report", "-c", config, "--week", WEEK, "--output", tmp_path / "missing" / "r.md") == 2
    assert "does not exist" in capsys.readouterr().err
    assert parse_week(WEEK).bounds("UTC")[0] == START  # the history above is the week asked for
