"""``report``: one ISO week's reliability report as Markdown, HTML or JSON, and sending it.

Without ``--send`` the report is computed from the database and printed or written; nothing is
stored.  With ``--send`` the week is archived (once) and sent through ``reports.weekly.channels``
under the same claim as the scheduled job, so it never goes out twice; what is written then is
rendered from the archived copy, i.e. exactly what was sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from monitor.cli.common import EXIT_OK, EXIT_UNHEALTHY, UsageError, load

FORMATS = ("md", "html", "json")
SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}


def add_report_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report", parents=[common], help="one week's reliability report (Markdown, HTML or JSON); --send sends it",
        description="Print or write the reliability report of one ISO week (site timezone): per service "
                    "availability vs SLO and error budget, incidents with time to detect and resolve, latency, "
                    "quality, cost, providers side by side, charts (HTML). The week defaults to the last completed "
                    "one; the format to the --output file's extension, else md. HTML written with --output gets "
                    "its charts as PNG files next to it; HTML on standard output has them inline. --send archives "
                    "the week and sends it through reports.weekly.channels, once: a week already sent is not sent "
                    "again. Exit 0 ok, 1 sending failed, 2 usage or config error.")
    p.add_argument("--week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W47 (default: the last completed week)")
    p.add_argument("--format", choices=FORMATS, help="md (default), html or json (the documented schema)")
    p.add_argument("--output", metavar="PATH", help="write to this file instead of standard output")
    p.add_argument("--send", action="store_true", help="archive the week and send it through reports.weekly.channels")
    p.set_defaults(func=cmd_report)


def output_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output:
        return SUFFIXES.get(Path(args.output).suffix.lower(), "md")
    return "md"


def cmd_report(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from monitor.reports.weeks import last_completed_week, parse_week
    from monitor.store.db import make_engine
    from monitor.store.migrate import upgrade

    config = load(args)
    now = datetime.now(UTC)
    try:
        week = parse_week(args.week) if args.week else last_completed_week(now, config.site.timezone)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    start, end = week.bounds(config.site.timezone)
    if start > now:
        raise UsageError(f"week {week} has not begun yet")
    fmt = output_format(args)
    if args.output and Path(args.output).is_dir():
        raise UsageError(f"--output {args.output}: is a directory (give a file name)")
    engine = make_engine(config.database)
    try:
        upgrade(engine)
        if args.send:
            return _send(engine, config, week, now, args, fmt)
        from monitor.reports.figures import build_report

        with Session(engine) as session:
            data = build_report(session, config, str(week), now)
        _write(data, fmt, args.output)
        return EXIT_OK
    finally:
        engine.dispose()


def _send(engine, config, week, now: datetime, args: argparse.Namespace, fmt: str) -> int:
    from monitor.reports import archive
    from monitor.reports.delivery import ReportChannelError, build_report_senders, send_week

    if week.bounds(config.site.timezone)[1] > now:
        raise UsageError(f"week {week} is not over yet: only completed weeks are sent (leave out --send to see it so far)")
    try:
        senders = build_report_senders(config)
    except ReportChannelError as exc:
        raise UsageError(f"reports.weekly.channels: {exc}") from None
    if not senders:
        raise UsageError("no channels to send through: list alert channel ids under reports.weekly.channels")
    result = send_week(engine, config, week, now=now, senders=senders)
    for channel_id, receipt in result.receipts.items():
        print(f"report {week} → {channel_id}: sent; the receiver answered {receipt}")
    for channel_id, error in result.errors.items():
        print(f"report {week} → {channel_id}: FAILED, {error}")
    if result.status == "already_sent":
        print(f"report {week}: already sent at {result.sent_at:%Y-%m-%d %H:%M} UTC; not sent again")
    elif result.status == "claimed":
        until = f" (its claim ends {result.retry_at:%Y-%m-%d %H:%M} UTC)" if result.retry_at else ""
        print(f"report {week}: another process is sending it{until}; not sent from here")
    if args.output:
        stored = archive.load(engine, str(week))
        if stored is not None:
            _write(stored.report(), fmt, args.output)
    return EXIT_OK if result.ok else EXIT_UNHEALTHY


def _write(data, fmt: str, output: str | None) -> None:
    """The report in ``fmt`` to ``output`` (HTML: chart files beside it) or to standard output."""
    from monitor.reports.schema import to_json

    if fmt == "json":
        _put(json.dumps(to_json(data), indent=2, ensure_ascii=False) + "\n", output)
    elif fmt == "md":
        from monitor.reports.render_md import render_md

        _put(render_md(data), output)
    else:
        from monitor.reports.charts import render_charts
        from monitor.reports.render_html import render_html

        charts = render_charts(data)
        if output is None:
            _put(render_html(data, charts, images="inline"), None)
            return
        path = Path(output)
        prefix = f"{path.stem}-"
        for chart in charts:
            _file(path.with_name(prefix + chart.filename)).write_bytes(chart.png)
        _put(render_html(data, charts, images="files", prefix=prefix), output)


def _put(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    _file(Path(output)).write_text(text, encoding="utf-8")


class _Writable:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write_text(self, text: str, encoding: str) -> None:
        self._do(lambda: self.path.write_text(text, encoding=encoding))

    def write_bytes(self, data: bytes) -> None:
        self._do(lambda: self.path.write_bytes(data))

    def _do(self, write) -> None:
        try:
            write()
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from None


def _file(path: Path) -> _Writable:
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {path.parent} does not exist")
    return _Writable(path)
