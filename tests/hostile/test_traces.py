"""``genstatus replay TRACE`` on malformed traces: every bad line named ``FILE:LINE: message``, exit 2,
no traceback, quickly.  Line 1 of each corpus trace is a good record, so the number is the bad line's."""

from __future__ import annotations

import json
import os

import pytest

from tests.hostile.support import MB, SLACK_S, assert_clean, baseline, run_cli, run_measured

GOOD = b'{"ts": "2026-11-02T10:00:00Z", "service": "s", "region": "r", "canary": "c", "outcome": "ok", "latency_ms": 900}\n'


def record(**fields) -> bytes:
    """A trace line: the good record with ``fields`` changed (``...`` drops a field)."""
    data = {**json.loads(GOOD), **fields}
    return (json.dumps({k: v for k, v in data.items() if v is not ...}) + "\n").encode()


def raw(fields: str) -> bytes:
    """A trace line written by hand (NaN, Infinity and other things ``json.dumps`` would not write)."""
    return b'{"ts": "2026-11-02T10:05:00Z", "service": "s", "region": "r", "outcome": "ok", ' + fields.encode() + b"}\n"


#: (id, trace content, the line named, message fragment)
CORPUS: list[tuple[str, bytes, int, str]] = [
    ("ts-year-1", GOOD + record(ts="0001-01-01T00:00:00"), 2, "invalid ts '0001-01-01T00:00:00': before 1970"),
    ("ts-before-1970", GOOD + record(ts="1969-12-31T23:59:59Z"), 2, "before 1970"),
    ("ts-far-future", GOOD + record(ts="9999-12-31T23:59:59Z"), 2, "after 8999"),
    ("ts-past-9999-in-utc", GOOD + record(ts="9999-12-31T23:59:59-05:00"), 2, "out of range"),
    ("ts-year-0-in-utc", GOOD + record(ts="0001-01-01T00:00:00+05:00"), 2, "out of range"),
    ("ts-a-number", GOOD + record(ts=20261102), 2, "invalid ts 20261102 (use an ISO 8601 string"),
    ("ts-in-words", GOOD + record(ts="yesterday"), 2, "invalid ts 'yesterday'"),
    ("ts-trailing-nul", GOOD + record(ts="2026-11-02T10:00:00\u0000"), 2, "invalid ts"),
    ("nested-100k-arrays", GOOD + b"[" * 100_000 + b"]" * 100_000 + b"\n", 2, "nested too deeply"),
    ("nested-100k-objects", GOOD + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"\n", 2, "nested too deeply"),
    ("nested-in-a-field", GOOD + raw('"detail": ' + "[" * 50_000 + "]" * 50_000), 2, "nested too deeply"),
    ("invalid-utf8", GOOD + b'{"ts": "2026-11-02T10:00:00Z", "service": "\xff\xfe", "region": "r", "outcome": "ok"}\n', 2,
     "not UTF-8 text (byte 44 of the line)"),
    ("raw-nul-in-a-string", GOOD + b'{"ts": "2026-11-02T10:00:00Z", "service": "s\x00", "region": "r", "outcome": "ok"}\n', 2,
     "not JSON: Invalid control character"),
    ("nul-bytes-only", GOOD + b"\x00\x00\x00\n", 2, "not JSON"),
    ("binary-garbage", GOOD + bytes(range(11, 256)) + b"\n", 2, "not UTF-8 text"),
    ("truncated-record", GOOD + GOOD[:40], 2, "not JSON"),
    ("a-number", GOOD + b"5\n", 2, "expected a JSON object, got int"),
    ("an-array", GOOD + b"[1, 2]\n", 2, "expected a JSON object, got list"),
    ("a-string", GOOD + b'"hello"\n', 2, "expected a JSON object, got str"),
    ("null", GOOD + b"null\n", 2, "expected a JSON object, got NoneType"),
    ("missing-ts", GOOD + record(ts=...), 2, "missing 'ts'"),
    ("missing-service", GOOD + record(service=...), 2, "missing 'service'"),
    ("missing-outcome", GOOD + record(outcome=...), 2, "missing 'outcome'"),
    ("service-a-number", GOOD + record(service=5), 2, "service must be a string, got 5"),
    ("region-a-boolean", GOOD + record(region=True), 2, "region must be a string, got True"),
    ("canary-an-object", GOOD + record(canary={"a": 1}), 2, "canary must be a string"),  # was a TypeError when sorting
    ("canary-a-number", GOOD + record(canary=7), 2, "canary must be a string"),
    ("detail-an-object", GOOD + record(detail={"a": 1}), 2, "detail must be a string"),
    ("service-a-lone-surrogate", GOOD + raw('"service": "\\ud800"').replace(b'"service": "s", ', b""), 2,
     "service is not valid Unicode"),  # valid JSON, but printing it crashed the incident list
    ("outcome-unknown", GOOD + record(outcome="exploded"), 2, "unknown outcome 'exploded'"),
    ("outcome-a-list", GOOD + record(outcome=["ok"]), 2, "unknown outcome ['ok']"),
    ("kind-unknown", GOOD + record(kind="weird"), 2, "unknown kind 'weird'"),
    ("latency-a-string", GOOD + record(latency_ms="fast"), 2, "latency_ms must be a number or null, got 'fast'"),
    ("latency-nan", GOOD + raw('"latency_ms": NaN'), 2, "latency_ms must be a number from 0"),
    ("latency-infinity", GOOD + raw('"latency_ms": Infinity'), 2, "latency_ms must be a number from 0"),
    ("latency-1e400", GOOD + raw('"latency_ms": 1e400'), 2, "latency_ms must be a number from 0"),
    ("latency-negative", GOOD + record(latency_ms=-5), 2, "latency_ms must be a number from 0"),
    ("latency-400-digits", GOOD + raw('"latency_ms": 1' + "0" * 400), 2, "characters)"),  # quoted cut short
    ("quality-above-1", GOOD + record(quality=5), 2, "quality must be a number from 0 to 1"),
    ("http-status-a-word", GOOD + record(http_status="abc"), 2, "http_status must be an HTTP status code"),
    ("integer-of-5000-digits", GOOD + raw('"latency_ms": ' + "9" * 5000), 2, "not JSON: Exceeds the limit"),
    ("crlf-bad-third-line", GOOD.replace(b"\n", b"\r\n") * 2 + record(outcome="boom").replace(b"\n", b"\r\n"), 3,
     "unknown outcome 'boom'"),
    ("bom-bad-second-line", b"\xef\xbb\xbf" + GOOD + record(region=[]), 2, "region must be a string"),
    ("bad-line-5001", GOOD * 5000 + b"{\n", 5001, "not JSON"),
    ("empty-file", b"", 1, "no results: the trace is empty"),
    ("only-blank-lines", b"\n  \n\t\n\r\n", 4, "no results"),
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The longest a bad trace may take: ``replay`` of a short good trace, in this process, plus ``SLACK_S``."""
    good = tmp_path_factory.mktemp("good") / "trace.jsonl"
    good.write_bytes(GOOD * 20)
    return baseline("replay", str(good)) + SLACK_S


@pytest.mark.parametrize("content, line, message", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_a_malformed_trace_names_its_bad_line(tmp_path, capsys, quick, content, line, message):
    path = tmp_path / "trace.jsonl"
    path.write_bytes(content)
    run = run_cli(capsys, "replay", str(path))
    assert_clean(run)
    assert run.code == 2, run.text
    assert run.err.startswith(f"genstatus: {path}:{line}: "), run.err
    assert message in run.err, run.err
    assert len(run.err) < 500, run.err  # a bad value is quoted, not echoed whole
    assert run.seconds < quick, f"{run.seconds:.2f} CPU s, a good trace took {quick - SLACK_S:.2f}"


def test_json_output_mode_refuses_the_same_lines(tmp_path, capsys):
    path = tmp_path / "trace.jsonl"
    path.write_bytes(GOOD + record(canary={"a": 1}))
    run = run_cli(capsys, "replay", str(path), "--json", "--updates")
    assert run.code == 2 and f"{path}:2: canary must be a string" in run.err and run.out == "", run.text


def test_a_50_mb_line_is_refused_without_reading_it_whole(tmp_path, cli_start):
    """One line of 50 MB: refused after its first megabyte, in a subprocess to see the memory."""
    path = tmp_path / "trace.jsonl"
    with path.open("wb") as trace:
        trace.write(GOOD + b'{"ts": "2026-11-02T10:00:00Z", "service": "')
        for _ in range(50):
            trace.write(b"s" * MB)
        trace.write(b'", "region": "r", "outcome": "ok"}\n')
    run = run_measured("replay", str(path))
    assert_clean(run)
    assert run.code == 2 and f"{path}:2: longer than 1024 KB" in run.err, run.text
    assert run.seconds < cli_start.seconds + SLACK_S
    assert run.peak_rss < cli_start.peak_rss + 100 * MB, f"{run.peak_rss // MB} MB"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_trace_line_is_read_no_further_than_a_record_can_be(cli_start):
    run = run_measured("replay", "/dev/zero")
    assert_clean(run)
    assert run.code == 2 and "genstatus: /dev/zero:1: longer than 1024 KB" in run.err, run.text
    assert run.peak_rss < cli_start.peak_rss + 100 * MB, f"{run.peak_rss // MB} MB"


def test_odd_but_valid_traces_replay(tmp_path, capsys):
    """CRLF line ends, a byte-order mark, blank lines between records, U+2028 in a name, far but sane times."""
    lines = [GOOD.replace(b"\n", b"\r\n"), b"\n", b"  \n", record(ts="2200-01-01T00:00:00Z"),
             record(service="a\u2028b"), record(ts="1970-01-01T00:00:00Z", kind="health", detail="x")]
    path = tmp_path / "trace.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    run = run_cli(capsys, "replay", str(path))
    assert run.code == 0 and run.out.startswith("4 results, 0 incidents"), run.text


def test_a_trace_that_opens_an_incident_for_an_odd_service_name_prints_it(tmp_path, capsys):
    names = "dalle\u00e9-\u2603-\U0001F600"
    lines = [record(ts=f"2026-11-02T10:{m:02d}:00Z", service=names, outcome="server_error") for m in range(0, 40, 2)]
    path = tmp_path / "trace.jsonl"
    path.write_bytes(b"".join(lines))
    run = run_cli(capsys, "replay", str(path))
    assert run.code == 0 and "1 incident" in run.out and names in run.out, run.text


@pytest.mark.parametrize("target, message", [("dir", "cannot read the trace file"), ("missing", "no such trace file")])
def test_unreadable_trace_paths_are_usage_errors(tmp_path, capsys, target, message):
    path = tmp_path if target == "dir" else tmp_path / "missing.jsonl"
    run = run_cli(capsys, "replay", str(path))
    assert run.code == 2 and f"genstatus: {path}: {message}" in run.err, run.text  # a directory was a traceback
    assert_clean(run)
