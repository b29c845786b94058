"""The dispatcher: outbox events become deliveries, and deliveries reach their channels.

Each round (``run_once``):

1. **Route** new outbox rows: a guarded update marks the row routed (``delivered_at``) and, in the
   same transaction, one ``alert_deliveries`` row per routed channel is written.  Two dispatchers
   on one PostgreSQL cannot route a row twice (the guard), and the unique delivery key backs it.
2. **Expire** deliveries older than ``alerts.give_up_after``: logged and counted, never silent.
3. **Reclaim** deliveries left ``sending`` longer than the lease (their dispatcher died between
   send and record): they are sent again, with the same idempotency key.
4. **Send** due deliveries concurrently: each is claimed with a guarded update (only one
   dispatcher wins it), sent with the channel's own timeout, and its outcome recorded --
   ``sent`` with the receiver's answer; a temporary error is retried with capped exponential
   backoff and jitter (or the receiver's ``Retry-After``); a permanent one marks the delivery
   ``failed``, marks the channel failing, and tells the operator on the other channels.

Visitors' subscriptions ride on the same machinery (``subscribers``): an outbox row they should hear
of also gets a fan-out delivery that writes one delivery per subscriber, sent after the alert
channels' deliveries of the round; a subscriber's failure is logged and never pages the operator.

Nothing here holds the coordinator lock: every step is safe to run from several processes.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.alerts.channels.base import DeliveryError, Receipt, Sender
from monitor.alerts.message import Message
from monitor.alerts.registry import build_senders
from monitor.alerts.render import redact, render, secrets_of
from monitor.alerts.routing import Event, deliveries_for
from monitor.alerts.subscribers import (
    CHANNEL_PREFIX,
    FAN_OUT,
    Prepared,
    SubscriberPost,
    fan_out,
    forget_unconfirmed,
    is_subscriber_channel,
    maintenance_notices,
    needs_fan_out,
)
from monitor.config import Config
from monitor.config.durations import format_duration
from monitor.config.subscriptions import SUBSCRIBER_AUDIENCE
from monitor.detection.admin import stored_maintenance
from monitor.enums import Audience, Impact
from monitor.store.models import AlertDelivery, AlertOutbox, Incident

log = logging.getLogger("genstatus.alerts")

BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 1800.0
RETRY_AFTER_CAP_S = 3600.0
ROUTE_BATCH = 200
SEND_BATCH = 50
LOOP_EVERY_S = 1.0
#: seconds between two rounds of subscriber housekeeping (forgetting unconfirmed addresses, maintenance notices)
HOUSEKEEPING_EVERY_S = 30.0
#: a hook for crash tests: when set, the dispatcher writes this file after claiming and waits to be killed
HOLD_AFTER_CLAIM_ENV = "GENSTATUS_TEST_HOLD_AFTER_CLAIM"


class State:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass
class Round:
    """What one round did (for logs, tests and ``genstatus`` output)."""

    routed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    reclaimed: int = 0
    subscriber_deliveries: int = 0  # written by fan-outs
    errors: list[str] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        senders: dict[str, Sender] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.config = config
        self.senders = build_senders(config) if senders is None else senders
        self.clock = clock
        self.token = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.failing: dict[str, str] = {}  # channel id -> the permanent error that stopped it
        self.expired_total = 0
        self._secrets = secrets_of(config)
        self.subscribers = SubscriberPost(config)
        self._housekept_at: datetime | None = None
        longest = max([sender.timeout for sender in self.senders.values()] + [self.subscribers.timeout], default=10.0)
        self.lease = timedelta(seconds=2 * longest + 60)
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round ---------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> Round:
        now = now or self.clock()
        result = Round()
        self._remind(now)
        self._housekeep(now)
        result.routed = self.route_new(now)
        result.expired = self._expire(now)
        result.reclaimed = self._reclaim(now)
        self._send_due(now, result)
        return result

    def route_new(self, now: datetime) -> int:
        """Turn new outbox rows into deliveries, one per routed channel."""
        routed = 0
        with Session(self.engine) as session, session.begin():
            rows = session.scalars(select(AlertOutbox).where(AlertOutbox.delivered_at.is_(None))
                                   .order_by(AlertOutbox.id).limit(ROUTE_BATCH)).all()
            windows = stored_maintenance(session, now) if rows else []  # the admin side's, besides the config's
            for row in rows:
                won = session.execute(update(AlertOutbox).where(AlertOutbox.id == row.id, AlertOutbox.delivered_at.is_(None))
                                      .values(delivered_at=now)).rowcount  # type: ignore[attr-defined]
                if not won:
                    continue  # another dispatcher routed it
                routes = [] if row.audience == SUBSCRIBER_AUDIENCE else deliveries_for(
                    self._event_of(session, row), self.config, now, exclude=self._excluded_for(row), maintenance=windows)
                if needs_fan_out(session, row, self.config):
                    routes.append((FAN_OUT, now))
                for channel_id, send_at in routes:
                    session.add(AlertDelivery(outbox_id=row.id, incident_id=row.incident_id, channel_id=channel_id,
                                              key=f"gs-{row.id}-{channel_id}", state=State.PENDING, created_at=now,
                                              attempts=0, next_attempt_at=send_at))
                routed += 1
        return routed

    def _remind(self, now: datetime) -> int:
        """While an incident stays open, one "reminder" outbox row per ``alerts.remind_every`` (unique per period)."""
        every = self.config.alerts.remind_every
        if not every:
            return 0
        written = 0
        with Session(self.engine) as session, session.begin():
            for incident in session.scalars(select(Incident).where(Incident.resolved_at.is_(None))):
                period = int((now - incident.detected_at) / every)
                key = f"reminder:{incident.id}:{period}"
                if period < 1 or session.scalar(select(AlertOutbox.id).where(AlertOutbox.dedupe_key == key)):
                    continue
                try:
                    with session.begin_nested():
                        session.add(AlertOutbox(
                            created_at=now, incident_id=incident.id, service_id=incident.service_id, event="reminder",
                            audience=incident.audience, impact=incident.impact, title=incident.title, attempts=0,
                            body=f"Still {incident.status} after {format_duration(now - incident.started_at)} "
                                 f"(first failure {incident.started_at:%Y-%m-%d %H:%M} UTC).", dedupe_key=key))
                    written += 1
                except IntegrityError:
                    pass  # another dispatcher wrote this period's reminder
        return written

    def _housekeep(self, now: datetime) -> None:
        """Subscriber chores, every ``HOUSEKEEPING_EVERY_S``: forget unconfirmed addresses, write maintenance notices."""
        if not self.config.subscriptions.enabled:
            return
        if self._housekept_at is not None and abs((now - self._housekept_at).total_seconds()) < HOUSEKEEPING_EVERY_S:
            return
        self._housekept_at = now
        forget_unconfirmed(self.engine, self.config, now)
        maintenance_notices(self.engine, self.config, now)

    def _event_of(self, session: Session, row: AlertOutbox) -> Event:
        kind = None
        if row.incident_id is not None:
            incident = session.get(Incident, row.incident_id)
            kind = incident.kind if incident else None
        return Event(event=row.event, audience=Audience(row.audience), impact=_impact(row.impact),
                     service=row.service_id, kind=kind)

    def _excluded_for(self, row: AlertOutbox) -> frozenset[str]:
        """A failing channel's own failure notice goes to the other channels only."""
        if row.event == "channel_failing" and row.service_id is None:
            return frozenset(self.failing)
        return frozenset()

    def _expire(self, now: datetime) -> int:
        cutoff = now - self.config.alerts.give_up_after
        with Session(self.engine) as session, session.begin():
            stale = session.scalars(select(AlertDelivery).where(AlertDelivery.state == State.PENDING,
                                                                AlertDelivery.created_at < cutoff,
                                                                AlertDelivery.attempts > 0)).all()
            for delivery in stale:
                delivery.state = State.EXPIRED
                log.error("alert %s to channel %s expired undelivered after %d attempts (last error: %s)",
                          delivery.key, delivery.channel_id, delivery.attempts, delivery.last_error or "none")
        self.expired_total += len(stale)
        return len(stale)

    def _reclaim(self, now: datetime) -> int:
        """Deliveries whose dispatcher died between claim and record go out again (same key)."""
        with Session(self.engine) as session, session.begin():
            count = session.execute(
                update(AlertDelivery).where(AlertDelivery.state == State.SENDING, AlertDelivery.claimed_at < now - self.lease)
                .values(state=State.PENDING, claimed_by=None, next_attempt_at=now)
            ).rowcount  # type: ignore[attr-defined]
        if count:
            log.warning("%d alert deliveries were left mid-send by a stopped dispatcher; sending them again", count)
        return int(count or 0)

    def _send_due(self, now: datetime, result: Round) -> None:
        # the alert channels' deliveries first: a thousand subscribers must not hold up the operator's page
        subscribers_last = case((AlertDelivery.channel_id.startswith(CHANNEL_PREFIX), 1), else_=0)
        with Session(self.engine) as session:
            due = session.scalars(select(AlertDelivery.id).where(AlertDelivery.state == State.PENDING,
                                                                 AlertDelivery.next_attempt_at <= now)
                                  .order_by(subscribers_last, AlertDelivery.id).limit(SEND_BATCH)).all()
        claimed = [delivery_id for delivery_id in due if self._claim(delivery_id, now)]
        if not claimed:
            return
        hold = os.environ.get(HOLD_AFTER_CLAIM_ENV)
        if hold:  # crash tests: stop here, claimed but not sent, until killed
            with open(hold, "w", encoding="utf-8") as marker:
                marker.write(",".join(str(i) for i in claimed))
            while True:
                time.sleep(1)
        with ThreadPoolExecutor(max_workers=min(8, len(claimed)), thread_name_prefix="genstatus-alert") as pool:
            futures = [pool.submit(self._deliver, delivery_id, result) for delivery_id in claimed]
            wait(futures)

    def _claim(self, delivery_id: int, now: datetime) -> bool:
        with Session(self.engine) as session, session.begin():
            won = session.execute(
                update(AlertDelivery).where(AlertDelivery.id == delivery_id, AlertDelivery.state == State.PENDING)
                .values(state=State.SENDING, claimed_by=self.token, claimed_at=now,
                        attempts=AlertDelivery.attempts + 1)
            ).rowcount  # type: ignore[attr-defined]
        return bool(won)

    def _deliver(self, delivery_id: int, result: Round) -> None:
        with Session(self.engine) as session:
            delivery = session.get(AlertDelivery, delivery_id)
            if delivery is None:
                return
            attempts = delivery.attempts
            prepared: Prepared | None = None  # a subscriber's message, sender and address
            sender: Sender
            message: Message
            fan_out_of = delivery.outbox_id if delivery.channel_id == FAN_OUT else None
            if fan_out_of is None:
                outbox = session.get(AlertOutbox, delivery.outbox_id)
                thread = self._thread_of(session, delivery)
                if is_subscriber_channel(delivery.channel_id):
                    ready = (self.subscribers.prepare(session, delivery, outbox, thread=thread)
                             if outbox is not None else "the event is gone")
                    if isinstance(ready, str):  # nothing to send (unsubscribed meanwhile, ...): say why, page no one
                        self._record(delivery_id, error=ready, permanent=True)
                        result.failed += 1
                        return
                    prepared = ready
                    sender, message = ready.sender, ready.message
                else:
                    found = self.senders.get(delivery.channel_id)
                    if outbox is None or found is None:
                        self._record(delivery_id, error=f"channel {delivery.channel_id!r} is no longer configured",
                                     permanent=True)
                        result.failed += 1
                        return
                    sender = found
                    message = render(session, outbox, self.config, key=delivery.key, thread=thread)
        if fan_out_of is not None:
            self._fan_out(delivery_id, fan_out_of, attempts, result)
            return
        began = time.perf_counter()
        try:
            receipt = sender.send(message)
        except DeliveryError as error:
            duration = (time.perf_counter() - began) * 1000
            reason = redact(error.reason, self._secrets) or "error"
            if prepared is not None:
                reason = prepared.scrub(reason)
            if error.permanent:
                self._record(delivery_id, error=reason, status=error.status, permanent=True, duration_ms=duration)
                if prepared is not None:  # one subscriber's problem, not the operator's
                    self.subscribers.failed(self.engine, delivery.channel_id, error.status, reason)
                else:
                    self._channel_failed(delivery.channel_id, reason)
                result.failed += 1
            else:
                delay = _backoff(attempts, error.retry_after)
                self._record(delivery_id, error=reason, status=error.status, duration_ms=duration,
                             retry_at=self.clock() + timedelta(seconds=delay))
                log.warning("alert %s to %s failed (%s); retrying in %.0fs", delivery.key, delivery.channel_id, reason, delay)
                result.retried += 1
            result.errors.append(f"{delivery.channel_id}: {reason}")
            return
        except Exception as error:  # noqa: BLE001 - a bug in one channel must not stop the others: retry it
            reason = redact(f"{type(error).__name__}: {error}", self._secrets) or "error"
            if prepared is not None:
                reason = prepared.scrub(reason)
            log.exception("alert channel %s raised unexpectedly", delivery.channel_id)
            self._record(delivery_id, error=reason, retry_at=self.clock() + timedelta(seconds=_backoff(attempts, None)))
            result.retried += 1
            result.errors.append(f"{delivery.channel_id}: {reason}")
            return
        self._record(delivery_id, receipt=receipt, duration_ms=(time.perf_counter() - began) * 1000)
        self.failing.pop(delivery.channel_id, None)
        result.sent += 1

    def _fan_out(self, delivery_id: int, outbox_id: int, attempts: int, result: Round) -> None:
        """Write the event's subscriber deliveries (in batches); retried like a send when the database fails."""
        try:
            written = fan_out(self.engine, outbox_id, self.config, self.clock())
        except Exception as error:  # noqa: BLE001 - a database hiccup: the next claim writes what is still missing
            log.exception("writing the subscriber deliveries of alert %d failed", outbox_id)
            self._record(delivery_id, error=f"{type(error).__name__}: {error}",
                         retry_at=self.clock() + timedelta(seconds=_backoff(attempts, None)))
            result.retried += 1
            return
        self._record(delivery_id, receipt=Receipt(f"{written} subscriber deliveries"))
        result.subscriber_deliveries += written

    def _thread_of(self, session: Session, delivery: AlertDelivery) -> dict[str, str]:
        """What the first sent message of the same incident on the same channel left for threading."""
        if delivery.incident_id is None:
            return {}
        first = session.scalars(
            select(AlertDelivery.thread).where(AlertDelivery.incident_id == delivery.incident_id,
                                               AlertDelivery.channel_id == delivery.channel_id,
                                               AlertDelivery.state == State.SENT, AlertDelivery.thread.is_not(None))
            .order_by(AlertDelivery.id).limit(1)
        ).first()
        return dict(first or {})

    def _record(self, delivery_id: int, *, receipt: Receipt | None = None, error: str | None = None,
                status: str | None = None, permanent: bool = False, duration_ms: float | None = None,
                retry_at: datetime | None = None) -> None:
        values: dict = {"duration_ms": duration_ms, "claimed_by": None}
        if receipt is not None:
            values.update(state=State.SENT, sent_at=self.clock(), receiver_status=receipt.status[:120],
                          thread=receipt.thread or None, last_error=None)
        elif permanent:
            values.update(state=State.FAILED, last_error=error, receiver_status=(status or "")[:120] or None)
        else:
            values.update(state=State.PENDING, last_error=error, receiver_status=(status or "")[:120] or None,
                          next_attempt_at=retry_at or self.clock())
        with Session(self.engine) as session, session.begin():
            session.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id,
                                                        AlertDelivery.claimed_by == self.token).values(**values))

    def _channel_failed(self, channel_id: str, reason: str) -> None:
        """Mark the channel failing, log it, and tell the operator on the other channels (once a day per channel)."""
        first = channel_id not in self.failing
        self.failing[channel_id] = reason
        log.error("alert channel %s is failing and will not be retried: %s", channel_id, reason)
        if not first:
            return
        now = self.clock()
        try:
            with Session(self.engine) as session, session.begin():
                session.add(AlertOutbox(created_at=now, incident_id=None, service_id=None, event="channel_failing",
                                        audience=Audience.OPERATOR.value, impact=Impact.MINOR.value,
                                        title=f"Alert channel {channel_id} is failing",
                                        body=f"Alerts to channel {channel_id} are not getting through: {reason}. "
                                             f"Fix its settings and check it with: genstatus alert-test {channel_id}",
                                        attempts=0, dedupe_key=f"channel-failing:{channel_id}:{now:%Y-%m-%d}"))
        except IntegrityError:
            pass  # already told today

    # -- the loop ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="genstatus-alerts", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._poked.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poked.wait(LOOP_EVERY_S)
            self._poked.clear()
            if self._stop.is_set():
                break
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a database hiccup must not end alerting; retry next round
                log.exception("alert dispatch round failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None


def _impact(value: str) -> Impact:
    try:
        return Impact(value)
    except ValueError:
        return Impact.MINOR


def _backoff(attempts: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 1.0), RETRY_AFTER_CAP_S)
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1)) * random.uniform(0.8, 1.2)
