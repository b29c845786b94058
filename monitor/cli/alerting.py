"""``alert-test``: send a realistic, clearly marked test alert through one configured channel."""

from __future__ import annotations

import argparse
import time

from monitor.cli.common import EXIT_OK, EXIT_UNHEALTHY, UsageError, load


def cmd_alert_test(args: argparse.Namespace) -> int:
    from monitor.alerts.channels.base import DeliveryError
    from monitor.alerts.message import Message
    from monitor.alerts.registry import build_senders
    from monitor.alerts.render import incident_link, redact, sample_outbox, secrets_of, since_text

    config = load(args)
    senders = build_senders(config)
    if args.channel not in senders:
        known = ", ".join(sorted(senders)) or "none: add some under alerts.channels"
        raise UsageError(f"no alert channel {args.channel!r} in the config (channels: {known})")
    row = sample_outbox(config, "resolve" if args.event == "resolved" else "open")
    service = config.services[0] if config.services else None
    message = Message(
        delivery_key=f"gs-test-{int(time.time())}-{args.channel}", event=row.event, title=row.title, body=row.body,
        impact=row.impact, audience=row.audience, service=row.service_id,
        service_name=service.display_name if service else None, group=service.group if service else None, kind="outage",
        regions=(config.region,), started_at=row.created_at, since=since_text(row.created_at, config.site.timezone),
        outcomes=(("server_error", 3), ("timeout", 1)), example="HTTP 503: upstream connect error",
        url=incident_link(config, 0), test=True,
    )
    began = time.perf_counter()
    try:
        receipt = senders[args.channel].send(message)
    except DeliveryError as error:
        kind = "permanent (fix the channel's settings)" if error.permanent else "temporary (worth retrying)"
        status = f" [{error.status}]" if error.status else ""
        print(f"alert-test {args.channel}: FAILED, {kind}{status}: {redact(error.reason, secrets_of(config))}")
        return EXIT_UNHEALTHY
    elapsed = (time.perf_counter() - began) * 1000
    detail = f" — {receipt.detail}" if receipt.detail else ""
    print(f"alert-test {args.channel}: sent in {elapsed:.0f} ms; the receiver answered {receipt.status}{detail}")
    return EXIT_OK
