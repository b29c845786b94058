"""``genstatus check-config -c FILE`` on malformed configs: exit 2, ``FILE:LINE key: message``, no
traceback, quickly -- and bounded memory for the files built to exhaust it.

``-c`` goes after the subcommand: before it, the subcommand's own ``-c`` default replaces it
(see ``test_c_before_the_subcommand_is_honoured``).
"""

from __future__ import annotations

import os
import re

import pytest

from tests.hostile.support import MB, SLACK_S, assert_clean, baseline, run_cli, run_measured

SERVICE = "canaries: [{id: c, prompt: x}]\nservices: [{id: s, provider: openai, canaries: [c]"
GOOD = SERVICE + "}]\n"
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 9)}]\n" for i in range(1, 9))
MERGE_LAUGHS = "a: &a {x0: 1, x1: 1, x2: 1, x3: 1, x4: 1, x5: 1, x6: 1, x7: 1, x8: 1, x9: 1}\n" + "".join(
    f"{chr(97 + i)}: &{chr(97 + i)} {{<<: *{chr(96 + i)}, "
    + ", ".join(f"{chr(97 + i)}{j}: *{chr(96 + i)}" for j in range(10)) + "}\n" for i in range(1, 8))

#: (id, file content, line, key path or None for a YAML-level problem, message fragment)
CORPUS: list[tuple[str, str | bytes, int, str | None, str]] = [
    # durations
    ("interval-inf", SERVICE + ", interval: .inf}]\n", 2, "services[0].interval", "longer than 3650 days"),
    ("interval-nan", SERVICE + ", interval: .nan}]\n", 2, "services[0].interval", "invalid duration nan"),
    ("interval-negative", SERVICE + ", interval: -5m}]\n", 2, "services[0].interval", "invalid duration '-5m'"),
    ("interval-negative-seconds", SERVICE + ", interval: -30}]\n", 2, "services[0].interval", "0 or more"),
    ("interval-14-digit-days", SERVICE + ", interval: 99999999999999d}]\n", 2, "services[0].interval", "longer than 3650 days"),
    ("interval-999999999d", SERVICE + ", interval: 999999999d}]\n", 2, "services[0].interval", "longer than 3650 days"),
    ("interval-1e400", SERVICE + ", interval: 1e400}]\n", 2, "services[0].interval", "invalid duration"),
    ("interval-400-digit-integer", SERVICE + ", interval: 1" + "0" * 400 + "}]\n", 2, "services[0].interval",
     "longer than 3650 days"),  # was an OverflowError converting it to a float
    ("interval-under-a-second", SERVICE + ", interval: 500ms}]\n", 2, "services[0].interval", "must be at least 1s"),
    ("timeout-in-words", SERVICE + ", timeout: 5 minutes}]\n", 2, "services[0].timeout", "invalid duration '5 minutes'"),
    ("duration-as-list", SERVICE + ", timeout: [1, 2]}]\n", 2, "services[0].timeout", "invalid duration"),
    ("health-interval-1ms", SERVICE + ", health_interval: 1ms}]\n", 2, "services[0].health_interval", "at least 1s"),
    ("keep-failing-images-huge", GOOD + "quality: {keep_failing_images: 99999999999999999999}\n", 3,
     "quality.keep_failing_images", "longer than 3650 days"),
    ("retention-negative", GOOD + "retention: {raw_results: -1d}\n", 3, "retention.raw_results", "invalid duration"),
    # YAML structure: aliases, merges, nesting, tags
    ("merge-of-a-scalar", "{<<: 5}\n", 1, None, "merging"),
    ("merge-list-with-scalar", "a: &a {x: 1}\nb: {<<: [*a, 5]}\n", 2, None, "merging"),
    ("recursive-alias", "a: &a [*a]\n", 1, None, "an alias refers to the value that contains it"),
    ("recursive-mapping-alias", "a: &a {b: *a}\n", 1, None, "an alias refers to the value that contains it"),
    ("undefined-alias", "site: *nowhere\n", 1, None, "undefined alias"),
    ("billion-laughs", LAUGHS, 1, None, "more than 50000 values"),
    ("merge-laughs", MERGE_LAUGHS, 1, None, "more than 50000 values"),
    ("nesting-10k-flow", "a: " + "[" * 10_000 + "]" * 10_000 + "\n", 1, None, "nested too deeply"),
    ("nesting-10k-block", "- " * 10_000 + "x\n", 1, None, "nested too deeply"),
    ("nesting-100-indented", "".join(" " * i + "k:\n" for i in range(100)) + " " * 100 + "v\n", 33, None, "nested too deeply"),
    ("python-object-tag", "site: !!python/object:os.system {}\n", 1, "site", "unsupported YAML tag"),
    ("set-tag", "site: !!set {a, b}\n", 1, "site", "unsupported YAML tag"),
    ("local-tag", "site: !mine {title: x}\n", 1, "site", "unsupported YAML tag '!mine'"),
    ("binary-value", "site: {title: !!binary aGVsbG8=}\n", 1, "site.title", "binary values"),
    ("int-tag-on-words", "site: {title: !!int abc}\n", 1, "site.title", "'abc' is not a valid int"),
    ("bool-tag-on-words", "site: {title: !!bool abc}\n", 1, "site.title", "'abc' is not a valid bool"),
    ("two-documents", "site: {}\n---\nsite: {}\n", 2, None, "another document"),
    ("unclosed-flow", "site: {title: x\nregion: eu\n", 2, None, "expected ',' or '}'"),
    ("unclosed-quote", "site: {title: \"x}\n", 2, None, "end of stream"),
    # database URL and numbers that used to pass check-config and crash run
    ("database-port-99999", "database: 'postgresql://u:pw@host:99999/db'\n" + GOOD, 1, "database", "port 99999 is not a TCP port"),
    ("database-port-0", "database: 'postgresql://u:pw@host:0/db'\n" + GOOD, 1, "database", "port 0 is not a TCP port"),
    ("database-port-letters", "database: 'postgresql://u:pw@host:abc/db'\n" + GOOD, 1, "database", "not a database URL"),
    ("database-not-a-url", "database: notaurl\n" + GOOD, 1, "database", "not a database URL"),
    ("database-broken-ipv6", "database: 'postgresql://u:pw@[::1/db'\n" + GOOD, 1, "database", "not a database URL"),
    ("database-mysql", "database: 'mysql://u@h/db'\n" + GOOD, 1, "database", "unsupported database 'mysql'"),
    ("database-a-number", "database: 5\n" + GOOD, 1, "database", "valid string"),
    ("seed-26-digits-on-postgresql", "database: 'postgresql://u@h/db'\n"
     "canaries: [{id: c, prompt: x, seed: 12345678901234567890123456}]\n", 2, "canaries[0].seed", "seed must be between 0 and"),
    ("seed-negative", "canaries: [{id: c, prompt: x, seed: -1}]\n", 1, "canaries[0].seed", "seed must be between 0 and"),
    ("seed-5000-digits", f"canaries: [{{id: c, prompt: x, seed: {'9' * 5000}}}]\n", 1, "canaries[0].seed",
     "is not a valid int (Exceeds the limit"),
    ("seed-infinite", "canaries: [{id: c, prompt: x, seed: .inf}]\n", 1, "canaries[0].seed", "finite number"),
    ("concurrency-huge", SERVICE + ", concurrency: 99999999999999999999}]\n", 2, "services[0].concurrency", "less than or equal to 64"),
    ("cost-infinite", SERVICE + ", cost_per_image: .inf}]\n", 2, "services[0].cost_per_image", "finite number"),
    ("budget-nan", SERVICE + ", monthly_budget: .nan}]\n", 2, "services[0].monthly_budget", "finite number"),
    ("max-image-bytes-huge", SERVICE + ", max_image_bytes: 99999999999999999999999}]\n", 2, "services[0].max_image_bytes",
     "less than or equal to 1073741824"),
    ("availability-nan", SERVICE + ", slo: {availability: .nan}}]\n", 2, "services[0].slo.availability", "finite number"),
    ("thumbnails-kept-huge", GOOD + "retention: {thumbnails_kept: 99999999999999999999999}\n", 3, "retention.thumbnails_kept",
     "less than or equal to 1000000"),
    ("profile-tolerance-infinite", GOOD + "quality: {profile_tolerance: .inf}\n", 3, "quality.profile_tolerance", "finite number"),
    ("false-incident-budget-nan", "detection: {false_incident_budget: .nan}\n", 1, "detection.false_incident_budget", "finite number"),
    # dates, times and URLs
    ("maintenance-month-13", "maintenance: [{start: 2026-13-45, end: 2026-01-02}]\n", 1, "maintenance[0].start",
     "'2026-13-45' is not a valid timestamp"),
    ("maintenance-february-30", "maintenance: [{start: 2026-02-30 10:00:00, end: 2026-03-02}]\n", 1, "maintenance[0].start",
     "day is out of range"),
    ("maintenance-offset-99h", "maintenance: [{start: 2026-01-01T10:00:00+99:00, end: 2026-01-02}]\n", 1,
     "maintenance[0].start", "not a valid timestamp"),
    ("maintenance-year-0-in-utc", "maintenance: [{start: 0001-01-01T00:00:00+05:00, end: 2026-01-01}]\n", 1,
     "maintenance[0].start", "out of range in UTC"),
    ("maintenance-after-9999-in-utc", "maintenance: [{start: 2026-01-01, end: '9999-12-31T23:59:59-23:59'}]\n", 1,
     "maintenance[0].end", "out of range in UTC"),
    ("maintenance-backwards", "maintenance: [{start: 2026-01-02, end: 2026-01-01}]\n", 1, "maintenance[0]", "end must be after start"),
    ("weekly-report-at-garbage", "reports: {weekly: {at: 'xyz 99:99'}}\n", 1, "reports.weekly.at", "invalid time 'xyz 99:99'"),
    ("quiet-hours-25h", "alerts: {routes: [{channels: [x], quiet_hours: {start: '25:00', end: '07:00'}}]}\n", 1,
     "alerts.routes[0].quiet_hours.start", "pattern"),
    ("timezone-path", "site: {timezone: '../../etc/passwd'}\n", 1, "site.timezone", "unknown timezone"),
    ("base-url-broken-ipv6", SERVICE + ", base_url: 'http://[::1'}]\n", 2, "services[0].base_url", "not a URL"),
    ("base-url-ftp", SERVICE + ", base_url: 'ftp://files.example.com'}]\n", 2, "services[0].base_url", "not an http(s) URL"),
    ("base-url-port-99999", SERVICE + ", base_url: 'https://api.example.com:99999/v1'}]\n", 2, "services[0].base_url", "not a URL"),
    ("allowed-origin-broken", SERVICE + ", allowed_origins: ['http://[::1']}]\n", 2, "services[0].allowed_origins", "is not an origin"),
    ("smtp-port-99999", "alerts: {channels: [{id: x, type: email, to: [a@b.c], smtp: {host: h, port: 99999}}]}\n", 1,
     "alerts.channels[0].smtp.port", "less than or equal to 65535"),
    # wrong types everywhere, unknown keys
    ("services-a-number", "services: 5\n", 1, "services", "valid list"),
    ("services-of-strings", "services: [a, b]\n", 1, "services[0]", "valid dictionary"),
    ("canaries-a-mapping", "canaries: {a: 1}\n", 1, "canaries", "valid list"),
    ("site-a-list", "site: [a]\n", 1, "site", "valid dictionary"),
    ("region-a-list", "region: [a]\n", 1, "region", "valid string"),
    ("title-a-date", "site: {title: 2020-01-01}\n", 1, "site.title", "valid string"),
    ("channel-unknown-type", "alerts: {channels: [{id: x, type: telegram}]}\n", 1, "alerts.channels[0]", "telegram"),
    ("channel-a-number", "alerts: {channels: [5]}\n", 1, "alerts.channels[0]", "valid dictionary"),
    ("headers-of-lists", SERVICE + ", headers: {a: [1]}}]\n", 2, "services[0].headers.a", "valid string"),
    ("unknown-top-level-key", "colour: red\n", 1, "colour", "unknown key 'colour'"),
    ("unknown-service-key", SERVICE + ", modle: x}]\n", 2, "services[0].modle", "unknown key 'modle'"),
    ("top-level-list", "- a\n- b\n", 1, "(top level)", "expected a mapping"),
    ("top-level-scalar", "hello\n", 1, "(top level)", "expected a mapping"),
    ("top-level-null", "~\n", 1, "(top level)", "expected a mapping"),
    ("duplicate-top-level-key", "site: {title: a}\nsite: {title: b}\n", 2, "site", "duplicate key 'site'"),
    ("duplicate-nested-key", "site:\n  title: a\n  title: b\n", 3, "site.title", "duplicate key 'title'"),
    ("missing-environment-variable", "site: {title: '${GENSTATUS_HOSTILE_UNSET_VARIABLE}'}\n", 1, "site.title",
     "environment variable GENSTATUS_HOSTILE_UNSET_VARIABLE is not set"),
    # bytes and characters
    ("binary-garbage", bytes(range(256)) * 8, 2, None, "not UTF-8 text"),
    ("invalid-utf8-on-line-3", b"site: {title: x}\nregion: eu\ndatabase: '\xff\xfe'\n", 3, None, "not UTF-8 text"),
    ("bom-then-error-on-line-2", b"\xef\xbb\xbfsite: {title: x}\nregion: [a]\n", 2, "region", "valid string"),
    ("tab-indent", "site:\n\ttitle: x\n", 2, None, "tab"),
    ("crlf-error-on-line-3", b"site: {title: x}\r\nregion: eu\r\ncolour: red\r\n", 3, "colour", "unknown key"),
    ("raw-nul", b"site: {title: a}\x00\n", 1, None, "unacceptable character #x0000"),
    ("raw-control-on-line-3", b"site: {title: x}\nregion: eu\nx: \"\x07\"\n", 3, None, "unacceptable character #x0007"),
    ("nul-escape", 'canaries: [{id: c, prompt: "a red\\0apple"}]\n', 1, "canaries[0].prompt", "NUL character"),
    ("lone-surrogate-escape", 'site: {title: "\\ud800"}\n', 1, None, "invalid Unicode character escape"),
    ("over-16-mb", "site: {title: x}\n" + "#" * (16 * MB), 1, None, "too large to be a config"),
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The longest a bad file may take: ``check-config`` on a good config, in this process, plus ``SLACK_S``."""
    good = tmp_path_factory.mktemp("good") / "genstatus.yaml"
    good.write_text(GOOD)
    return baseline("check-config", "-c", str(good)) + SLACK_S


def _write(path, content: str | bytes) -> None:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)


def assert_names_file_line_key(err: str, path, line: int, key: str | None, message: str) -> None:
    first = err.strip().splitlines()[0] if err.strip() else ""
    prefix = f"{path}:{line} "
    assert first.startswith(prefix), f"wanted {prefix!r}..., got {err!r}"
    if key is not None:
        assert first.startswith(f"{prefix}{key}: "), f"wanted the key {key!r}: {err!r}"
    assert message in err, f"wanted {message!r} in {err!r}"


@pytest.mark.parametrize("content, line, key, message", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_a_malformed_config_is_named_by_file_line_and_key(tmp_path, capsys, quick, content, line, key, message):
    path = tmp_path / "genstatus.yaml"
    _write(path, content)
    run = run_cli(capsys, "check-config", "-c", str(path))
    assert_clean(run)
    assert run.code == 2, run.text
    assert_names_file_line_key(run.err, path, line, key, message)
    assert "pw@" not in run.err  # a password in a database URL is not repeated
    assert run.seconds < quick, f"{run.seconds:.2f} CPU s, the good config took {quick - SLACK_S:.2f}"


CRASHED_RUN = ["database-not-a-url", "database-port-99999", "interval-999999999d", "seed-26-digits-on-postgresql",
               "keep-failing-images-huge", "thumbnails-kept-huge", "maintenance-year-0-in-utc", "base-url-broken-ipv6"]


@pytest.mark.parametrize("name", CRASHED_RUN)
def test_files_that_passed_check_config_and_then_broke_run_are_refused(tmp_path, capsys, name):
    """These passed ``check-config`` and then crashed ``run`` (or, for the last ones, crashed its
    retention job, crashed ``check-config`` itself, or made every probe a ``probe_error``)."""
    content = next(c[1] for c in CORPUS if c[0] == name)
    path = tmp_path / "genstatus.yaml"
    _write(path, content)
    run = run_cli(capsys, "check-config", "-c", str(path))
    assert run.code == 2 and re.match(rf"{re.escape(str(path))}:\d+ \S", run.err), run.text
    assert_clean(run)


@pytest.mark.parametrize("content", [
    "",
    "# only a comment\n",
    "\ufeffsite: {title: x}\n",  # a byte-order mark, as Windows editors write
    GOOD.replace("\n", "\r\n"),  # Windows line ends
    "%YAML 1.2\n---\n" + GOOD,
], ids=["empty", "comment-only", "bom", "crlf", "yaml-1.2-directive"])
def test_odd_but_valid_configs_pass(tmp_path, capsys, content):
    """An empty config is valid (every section has its documented default); so are a BOM and CRLF."""
    path = tmp_path / "genstatus.yaml"
    path.write_text(content, encoding="utf-8")
    run = run_cli(capsys, "check-config", "-c", str(path))
    assert run.code == 0 and ": OK (" in run.out, run.text


def test_unreadable_config_paths_are_usage_errors(tmp_path, capsys):
    for target, message in ((tmp_path, "cannot read config"), (tmp_path / "missing.yaml", "no such config file")):
        run = run_cli(capsys, "check-config", "-c", str(target))
        assert run.code == 2 and f"{target}: {message}" in run.err, run.text
        assert_clean(run)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_an_endless_config_is_read_no_further_than_a_config_can_be(cli_start):
    """``-c /dev/zero`` was read whole: it grew to 23 GB before the kernel killed it (so: a subprocess)."""
    run = run_measured("check-config", "-c", "/dev/zero")
    assert_clean(run)
    assert run.code == 2 and "/dev/zero:1 over 16 MB, too large to be a config" in run.err, run.text
    assert run.seconds < cli_start.seconds + SLACK_S
    assert run.peak_rss < cli_start.peak_rss + 100 * MB, f"{run.peak_rss // MB} MB"


def big_config(target_bytes: int) -> str:
    """A realistic config of many canaries and services, about ``target_bytes`` long."""
    parts = ["site: {title: 'Status of everything', timezone: Europe/Berlin}\ndatabase: sqlite:///big.db\nregion: eu-west\n",
             "canaries:\n"]
    size, canaries = sum(map(len, parts)), 0
    while size < target_bytes // 3:
        part = (f"  - id: canary-{canaries}\n    prompt: \"a red apple on a wooden table, studio light, photo {canaries}\"\n"
                f"    size: 1024x1024\n    seed: {canaries}\n")
        parts.append(part)
        size += len(part)
        canaries += 1
    parts.append("services:\n")
    services = 0
    while size < target_bytes:
        part = (f"  - id: service-{services}\n    name: \"Service number {services}\"\n    group: group-{services % 50}\n"
                f"    provider: openai\n    api_key: sk-test-0123456789abcdef{services}\n    model: dall-e-3\n"
                f"    canaries: [canary-{services % canaries}, canary-{(services + 1) % canaries}]\n"
                f"    interval: 10m\n    timeout: 3m\n    slo: {{availability: 99.5, latency_p95: 60s}}\n")
        parts.append(part)
        size += len(part)
        services += 1
    return "".join(parts)


def test_a_900_kb_config_of_2000_services_is_checked_in_a_few_seconds(tmp_path, capsys, quick):
    """Just under the 50 000-value limit: valid, and parsed by libyaml (1 MB took 2.9 s, now 1.4 s on one machine)."""
    path = tmp_path / "genstatus.yaml"
    path.write_text(big_config(900_000))
    run = run_cli(capsys, "check-config", "-c", str(path))
    assert run.code == 0 and re.search(r"OK \(2\d{3} services, 2\d{3} canaries\)", run.out), run.text
    assert run.seconds < quick + 2.0, f"{run.seconds:.2f} CPU s"


def test_a_10_mb_config_is_refused_in_a_few_seconds_with_bounded_memory(tmp_path, cli_start):
    """It took 23-43 s (PyYAML's pure-Python parser composed all 10 MB before the value limit was
    checked); the limits now hold while libyaml parses, so it stops near the first megabyte."""
    path = tmp_path / "genstatus.yaml"
    path.write_text(big_config(10 * MB))
    run = run_measured("check-config", "-c", str(path))
    assert_clean(run)
    assert run.code == 2 and re.match(rf"{re.escape(str(path))}:\d+ more than 50000 values", run.err), run.text
    assert run.seconds < cli_start.seconds + SLACK_S, f"{run.seconds:.2f} CPU s, --help took {cli_start.seconds:.2f}"
    assert run.peak_rss < cli_start.peak_rss + 200 * MB, f"{run.peak_rss // MB} MB"


@pytest.mark.parametrize("name", ["billion-laughs", "merge-laughs"])
def test_files_built_to_exhaust_memory_fail_fast_in_a_subprocess(tmp_path, cli_start, name):
    """Nine aliases of nine aliases ... eight levels deep: 43 million values if they were expanded."""
    content, line, _, message = next(c[1:] for c in CORPUS if c[0] == name)
    path = tmp_path / "genstatus.yaml"
    _write(path, content)
    run = run_measured("check-config", "-c", str(path))
    assert_clean(run)
    assert run.code == 2 and f"{path}:{line} " in run.err and message in run.err, run.text
    assert run.seconds < cli_start.seconds + SLACK_S, f"{run.seconds:.2f} CPU s"
    assert run.peak_rss < cli_start.peak_rss + 150 * MB, f"{run.peak_rss // MB} MB"  # expanding them would take gigabytes


def test_c_before_the_subcommand_is_honoured(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(SERVICE + ", interval: .nan}]\n")
    run = run_cli(capsys, "-c", str(path), "check-config")
    assert run.code == 2 and f"{path}:2 services[0].interval" in run.err, run.text
