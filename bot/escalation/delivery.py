"""Delivers stored escalations to the recipient's channel, exactly once, never losing one, on any platform.

- The record is claimed ('sending', with this replica's lease) before the post.
  Any attempt after one that may have landed (a timeout, a 5xx, a crash) first
  looks in the channel (`AlertChannel.find`) and posts only when the alert is not
  there: no library retries blindly.
- Rate limits (honouring Retry-After), 5xx and network errors are retried with
  backoff (tenacity); what is still failing stays pending for the worker's next
  sweep. Permanent errors (a channel the bot is not in, a revoked token) mark it
  failed_permanent, are logged loudly and shown by `health()`; the worker tries
  those again now and then, in case the setup was fixed.
- A background worker delivers everything open at start (so a restart after a
  crash delivers what was stored), then what `deliver_soon` queues, and re-sends
  alerts nobody acknowledged within `ack_timeout_minutes` to the school's
  fallback channel, once, whichever replica does it.

Logs carry ids, routes, categories and error codes: never the words of a concern.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bot.escalation.alert import build_alert, recipient
from bot.escalation.channel import AlertChannel, DeliveryError
from bot.escalation.routes import Route, route_for
from bot.escalation.store import FAILED, SENDING, Escalation, EscalationStore
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Retry timing; the tests shrink it."""

    initial: float = 1.0
    maximum: float = 60.0
    retry_after_cap: float = 300.0
    sweep_seconds: float = 30.0  # how often the worker looks for open and unacknowledged alerts
    permanent_retry_seconds: float = 900.0  # how often a permanently failing alert is tried again


@dataclass(frozen=True)
class Failure:
    id: str
    school: str
    route: str
    error: str


@dataclass(frozen=True)
class Health:
    """For status: how many alerts are not yet delivered, and why some cannot be."""

    pending: int
    failures: tuple[Failure, ...]
    unacknowledged: int
    worker_running: bool


class Deliverer:
    def __init__(self, store: EscalationStore, channels: dict[str, AlertChannel] | AlertChannel, settings: Settings,
                 backoff: Backoff = Backoff()):
        self.store = store
        self.channels = channels if isinstance(channels, dict) else {channels.platform: channels}
        self.settings = settings
        self.backoff = backoff
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliver_lock = threading.Lock()
        self._last_permanent_try: dict[str, float] = {}

    # -- the API the conversation core uses ------------------------------------------------------

    def route(self, school: str | None, who: str, platform: str | None) -> Route | None:
        """Where a concern for `who` raised on `platform` would go now."""
        return route_for(self.settings, school, who, platform, tuple(self.channels))

    def recipient(self, record: Escalation) -> str:
        """Who the record's alert is for: as assessed, and the chair whenever an allegation names one of the school's
        headteachers (`head_user_ids`) anywhere in its words, so it never goes where the head reads it."""
        who = recipient(record)
        heads = self.settings.routes(record.school).head_user_ids
        if who == "head" and any(f"<@{user}" in record.text or user in record.text.split() for user in heads):
            return "chair"
        return who

    def describe(self, route: Route) -> str:
        try:
            return self.channels[route.platform].describe(route.channel)
        except Exception:  # a name is for the member of staff; the channel id still tells them where it went
            log.info("could not name channel on %s", route.platform)
            return route.channel

    def deliver_soon(self, escalation_id: str) -> None:
        """Queue an escalation for the worker; returns at once."""
        self._queue.put(escalation_id)

    def start(self) -> None:
        """Start the worker: it delivers everything open now, then queued ids, and sweeps periodically."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="escalation-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to finish its current alert and stop."""
        self._stop.set()
        self._queue.put(None)
        if self._thread:
            self._thread.join(timeout)

    def health(self) -> Health:
        open_records = self.store.open_records()
        failures = tuple(Failure(r.id, r.school, r.route, r.last_error or "unknown error") for r in open_records if r.status == FAILED)
        timeout = dt.timedelta(minutes=self.settings.escalation.ack_timeout_minutes)
        return Health(len(open_records), failures, len(self.store.unacknowledged(timeout)), bool(self._thread and self._thread.is_alive()))

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, escalation_id: str) -> Escalation:
        """Deliver one escalation now (blocking, with retries); returns the record as it then stands."""
        with self._deliver_lock:
            record = self.store.get(escalation_id)
            if record.status not in ("pending", SENDING, FAILED):
                return record
            route = self.route(record.school, self.recipient(record), record.platform)
            if route is None:
                problem = (f"no channel for {self.recipient(record)} of school {record.school!r} on {', '.join(self.channels) or 'no platform'}: "
                           f"set schools.{record.school or '<school>'}.dsl_channel or escalation.dsl_channel")
                self.store.mark_failed(record.id, f"not configured: {problem}", permanent=True)
                log.error("SAFEGUARDING ALERT NOT DELIVERED id=%s route=%s: %s", record.id, record.route, problem)
                return self.store.get(record.id)
            channel = self.channels[route.platform]
            state = {"maybe_posted": record.status == SENDING and record.sending_channel == route.channel}

            def once() -> None:
                try:
                    self._attempt(record, channel, route, state["maybe_posted"])
                except DeliveryError as error:
                    if error.maybe_posted:
                        state["maybe_posted"] = True
                    raise

            try:
                for attempt in self._retrying():
                    with attempt:
                        once()
            except DeliveryError as error:
                if error.maybe_posted:  # stays 'sending': the next try looks in the channel before posting
                    self.store.note_error(record.id, error.code)
                    self.store.release(record.id)
                    log.warning("escalation id=%s still unconfirmed after retries: %s", record.id, error.code)
                else:
                    self.store.mark_failed(record.id, error.code, permanent=not error.transient)
                    if error.transient:
                        log.warning("escalation id=%s still pending after retries: %s", record.id, error.code)
                    else:
                        log.error("SAFEGUARDING ALERT NOT DELIVERED id=%s route=%s platform=%s: error %s; fix the configuration "
                                  "or add the bot to the channel; it stays pending", record.id, record.route, route.platform, error.code)
            return self.store.get(record.id)

    def _attempt(self, record: Escalation, channel: AlertChannel, route: Route, maybe_posted: bool) -> None:
        """One try: look first if an earlier try may have posted; claim; post."""
        if maybe_posted:
            since = dt.datetime.fromisoformat(record.sending_at) if record.sending_at else dt.datetime.fromisoformat(record.raised_at)
            found = channel.find(record, route.channel, since - dt.timedelta(minutes=2))
            if found:
                self.store.mark_delivered(record.id, route.channel, found, detail="found in the channel")
                log.info("escalation id=%s already in the channel; not posted again", record.id)
                return
        self._check_audience(record, channel, route)
        if not self.store.claim(record.id, route.channel):
            current = self.store.get(record.id)
            if current.status in ("pending", SENDING, FAILED):  # another replica holds it now: it will post
                raise DeliveryError("claimed by another replica", transient=True, retry_after=5.0)
            return  # delivered or closed meanwhile
        alert = build_alert(self.store.get(record.id), fallback_note=route.note)
        try:
            message = channel.post(record, route.channel, alert)
        except DeliveryError as error:
            if error.maybe_posted:
                self.store.note_error(record.id, error.code)
            elif error.transient:
                self.store.mark_failed(record.id, error.code, permanent=False)
            raise
        self.store.mark_delivered(record.id, route.channel, message)
        log.info("escalation delivered id=%s route=%s platform=%s fallback=%s", record.id, record.route, route.platform, route.fallback)

    def _check_audience(self, record: Escalation, channel: AlertChannel, route: Route) -> None:
        """An allegation about the head must not go where the head reads it."""
        heads = tuple(self.settings.routes(record.school).head_user_ids)
        if self.recipient(record) != "chair" or not heads:
            return
        if channel.includes(record, route.channel, heads):
            raise DeliveryError(f"channel {route.channel} includes the headteacher; set a chair_channel they are not in", False)

    def _retrying(self) -> Retrying:
        backoff = self.backoff

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None:
                return min(float(retry_after), backoff.retry_after_cap)
            return min(backoff.initial * 2 ** (state.attempt_number - 1), backoff.maximum)

        return Retrying(
            stop=stop_after_attempt(max(1, self.settings.escalation.max_attempts_per_run)),
            wait=wait,
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.transient and not self._stop.is_set()),
            reraise=True,
        )

    # -- re-alerting ----------------------------------------------------------------------------

    def resend_unacknowledged(self) -> int:
        """Re-send alerts not acknowledged within the timeout to the school's fallback channel, once; returns how many."""
        timeout = dt.timedelta(minutes=self.settings.escalation.ack_timeout_minutes)
        sent = 0
        for record in self.store.unacknowledged(timeout):
            route = self.route(record.school, self.recipient(record), record.platform)
            platform = route.platform if route else record.platform
            fallback = self.settings.routes(record.school).on(platform).fallback_channel
            channel = self.channels.get(platform)
            if not fallback or fallback == record.delivered_channel or channel is None:
                continue
            heads = tuple(self.settings.routes(record.school).head_user_ids)
            if self.recipient(record) == "chair" and fallback == self.settings.routes(record.school).on(platform).head_channel:
                log.error("escalation id=%s: fallback channel is the head's channel; not re-sent there", record.id)
                continue
            claimed = False
            try:
                if self.recipient(record) == "chair" and heads and channel.includes(record, fallback, heads):
                    log.error("escalation id=%s: fallback channel includes the headteacher; not re-sent", record.id)
                    continue
                claimed = self.store.claim_resend(record.id)
                if not claimed:
                    continue  # another replica re-sent it, or is re-sending it
                message = channel.post(record, fallback, build_alert(record, resent=True))
            except DeliveryError as error:
                log.error("escalation id=%s: re-send to fallback failed: %s; trying again at the next sweep", record.id, error.code)
                if claimed:
                    self.store.release_resend(record.id)
                continue
            self.store.mark_resent(record.id, fallback, message)
            log.warning("escalation id=%s not acknowledged in %s minutes; re-sent to fallback", record.id,
                        self.settings.escalation.ack_timeout_minutes)
            sent += 1
        return sent

    # -- the worker ----------------------------------------------------------------------------

    def sweep(self, include_permanent: bool = False) -> None:
        """Try every open escalation (permanent failures only when due) and re-send late ones."""
        for record in self.store.open_records():
            if self._stop.is_set():
                return
            if record.status == FAILED and not include_permanent:
                last = self._last_permanent_try.get(record.id, 0.0)
                if time.monotonic() - last < self.backoff.permanent_retry_seconds:
                    continue
            self._last_permanent_try[record.id] = time.monotonic()
            self._safely(self.deliver, record.id)
        self._safely(self.resend_unacknowledged)

    def _run(self) -> None:
        log.info("escalation delivery worker started")
        self.sweep(include_permanent=True)
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self.backoff.sweep_seconds)
            except queue.Empty:
                self.sweep()
                continue
            if item is None:
                break
            self._safely(self.deliver, item)
        log.info("escalation delivery worker stopped")

    @staticmethod
    def _safely(function, *args) -> None:
        try:
            function(*args)
        except Exception:  # the worker must survive anything; the record stays open and is retried
            log.exception("escalation worker error in %s", getattr(function, "__name__", "task"))
