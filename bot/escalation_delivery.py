"""Delivers stored escalations to the route's Slack channel, exactly once, never losing one.

- The record is claimed ('sending') before `chat.postMessage`; the alert carries the
  escalation id in message metadata. A record found 'sending' (a crash, a timeout or
  a 5xx after Slack may have posted) is first looked for in the channel's recent
  history, and posted only when it is not there.
- Rate limits (honouring Retry-After), 5xx and network errors are retried with
  exponential backoff (tenacity); what is still failing stays pending and is retried
  by the worker's next sweep. Permanent errors (channel_not_found, not_in_channel,
  invalid_auth, ...) mark it failed_permanent, are logged loudly and are shown by
  `health()`; the worker tries those again now and then, in case the setup was fixed.
- A background worker delivers everything open on start (so a restart after a crash
  delivers what was stored), then whatever `deliver_soon` queues, and re-sends alerts
  not acknowledged within `ack_timeout_minutes` to the school's fallback channel.

Logs carry ids, routes, categories and Slack error codes: never the words of a concern.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bot.escalation_store import FAILED, SENDING, Escalation, EscalationStore
from bot.settings import Settings

log = logging.getLogger(__name__)

METADATA_EVENT = "policybot_escalation"
ACK_ACTION = "policybot_escalation_ack"
CLOSE_ACTION = "policybot_escalation_close"
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "invalid_auth", "account_inactive", "is_archived", "token_revoked",
    "token_expired", "not_authed", "missing_scope", "restricted_action", "no_permission", "ekm_access_denied",
    "team_access_not_granted", "invalid_arguments", "invalid_blocks", "msg_too_long", "org_login_required",
})
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
WORDS_PER_BLOCK = 2900  # a section block holds at most 3,000 characters
ROUTE_LABEL = {"dsl": "DSL (concern about a child)", "staff-allegation": "Allegation about an adult"}


class DeliveryError(Exception):
    """One failed Slack call, classified."""

    def __init__(self, code: str, transient: bool, retry_after: float | None = None):
        super().__init__(code)
        self.code, self.transient, self.retry_after = code, transient, retry_after


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
    """For `/policy status`: how many alerts are not yet delivered, and why some cannot be."""

    pending: int
    failures: tuple[Failure, ...]
    unacknowledged: int
    worker_running: bool

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        out = [f"Safeguarding alerts waiting for delivery: {self.pending}"
               + ("" if self.worker_running else " (delivery worker NOT running)")]
        for f in self.failures:
            out.append(f"  ALERT NOT DELIVERED {f.id[:8]} ({f.school}, {f.route}): {f.error}")
        if self.unacknowledged:
            out.append(f"Delivered but not yet acknowledged: {self.unacknowledged}")
        return out


def target_channel(record: Escalation, settings: Settings) -> tuple[str | None, str]:
    """The channel an escalation goes to, or (None, what to configure)."""
    routes = settings.routes(record.school)
    if record.route == "staff-allegation":
        if about_head(record, settings):
            return routes.chair_channel, f"no chair_channel configured for school {record.school!r} (allegation about the headteacher)"
        return routes.head_channel, f"no head_channel configured for school {record.school!r}"
    return (routes.dsl_channel or settings.escalation.dsl_channel,
            f"no dsl_channel configured for school {record.school!r} nor escalation.dsl_channel")


def about_head(record: Escalation, settings: Settings) -> bool:
    """About the headteacher: as assessed, or the message @-mentions one of the school's head_user_ids."""
    heads = settings.routes(record.school).head_user_ids
    return record.about_head or any(f"<@{user}" in record.text for user in heads)


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_alert(record: Escalation, resent: bool = False) -> tuple[str, list[dict]]:
    """(notification text, Block Kit blocks). Only stored facts; the words verbatim in plain_text blocks."""
    when = int(dt.datetime.fromisoformat(record.raised_at).timestamp())
    title = "Safeguarding concern" if record.route == "dsl" else "Allegation about an adult who works with children"
    if resent:
        title = "NOT ACKNOWLEDGED: " + title
    who = f"<@{record.raised_by}>" if record.raised_by else "unknown user"
    where = f"<#{record.channel}>" if record.channel else "unknown channel"
    if record.permalink:
        where += f" (<{record.permalink}|message>)"
    cats = "\n".join(f"• *{c}*: {_mrkdwn_escape(r)}" for c, r in zip(record.categories, record.reasons)) or "• none recorded"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Raised by*\n{who}"},
            {"type": "mrkdwn", "text": f"*When*\n<!date^{when}^{{date_short_pretty}} {{time}}|{record.raised_at}>"},
            {"type": "mrkdwn", "text": f"*Where*\n{where}"},
            {"type": "mrkdwn", "text": f"*Route*\n{ROUTE_LABEL.get(record.route, record.route)} · school {record.school}"},
        ]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Categories and why*\n{cats}"[:3000]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Their words, exactly as written:*"}},
    ]
    words = record.text or " "
    for start in range(0, len(words), WORDS_PER_BLOCK):
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": words[start: start + WORDS_PER_BLOCK], "emoji": False}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _status_line(record)}]})
    buttons = []
    if not record.acknowledged_by and record.status != "closed":
        buttons.append({"type": "button", "action_id": ACK_ACTION, "value": record.id, "style": "primary",
                        "text": {"type": "plain_text", "text": "Acknowledge"}})
    if record.status != "closed":
        buttons.append({"type": "button", "action_id": CLOSE_ACTION, "value": record.id,
                        "text": {"type": "plain_text", "text": "Close"}})
    if buttons:
        blocks.append({"type": "actions", "block_id": f"escalation:{record.id}", "elements": buttons})
    text = f"{title}: raised by {who} ({', '.join(record.categories) or record.route}). Open the alert to read it."
    return text, blocks[:50]


def _status_line(record: Escalation) -> str:
    parts = [f"Escalation {record.id}"]
    if record.acknowledged_by:
        parts.append(f"acknowledged by <@{record.acknowledged_by}> at {record.acknowledged_at}")
    if record.closed_by:
        parts.append(f"closed by <@{record.closed_by}> at {record.closed_at}")
    return " · ".join(parts)


def classify(exc: BaseException) -> DeliveryError:
    """Turn a slack_sdk or network exception into a DeliveryError (transient or permanent)."""
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        headers = {str(k).lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
        retry_after = None
        value = headers.get("retry-after")
        if isinstance(value, list):
            value = value[0] if value else None
        try:
            retry_after = float(value) if value is not None else None
        except ValueError:
            retry_after = None
        if status == 429 or code == "ratelimited":
            return DeliveryError("ratelimited", True, retry_after if retry_after is not None else 1.0)
        if status >= 500 or code in TRANSIENT:
            return DeliveryError(code or f"http_{status}", True, retry_after)
        if code:
            return DeliveryError(code, code not in PERMANENT and code.startswith("internal"), retry_after)
        return DeliveryError(f"http_{status}" if status else "bad_response", status == 0 or status >= 500)
    return DeliveryError(type(exc).__name__, True)  # network errors, timeouts, broken responses


class Deliverer:
    """Posts stored escalations with a slack_sdk WebClient; `start()` runs the background worker."""

    def __init__(self, store: EscalationStore, client, settings: Settings, backoff: Backoff = Backoff()):
        self.store = store
        self.client = client
        self.settings = settings
        self.backoff = backoff
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliver_lock = threading.Lock()
        self._last_permanent_try: dict[str, float] = {}

    # -- the API the chat adapter uses ---------------------------------------------------------

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
        """Open alerts, permanent failures with their Slack error, and unacknowledged ones."""
        open_records = self.store.open_records()
        failures = tuple(Failure(r.id, r.school, r.route, r.last_error or "unknown error")
                         for r in open_records if r.status == FAILED)
        timeout = dt.timedelta(minutes=self.settings.escalation.ack_timeout_minutes)
        late = len(self.store.unacknowledged(timeout))
        return Health(len(open_records), failures, late, bool(self._thread and self._thread.is_alive()))

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, escalation_id: str) -> Escalation:
        """Deliver one escalation now (blocking, with retries); returns the record as it then stands."""
        with self._deliver_lock:
            record = self.store.get(escalation_id)
            if record.status not in ("pending", SENDING, FAILED):
                return record
            channel, problem = target_channel(record, self.settings)
            if not channel:
                self.store.mark_failed(record.id, f"not configured: {problem}", permanent=True)
                log.error("SAFEGUARDING ALERT NOT DELIVERED id=%s route=%s: %s", record.id, record.route, problem)
                return self.store.get(record.id)
            state = {"maybe_posted": record.status == SENDING and record.sending_channel == channel}

            def once() -> None:
                try:
                    self._attempt(record, channel, state["maybe_posted"])
                except _Ambiguous:
                    state["maybe_posted"] = True
                    raise

            try:
                for attempt in self._retrying():
                    with attempt:
                        once()
            except _Ambiguous as error:  # stays 'sending': the next try looks in the channel before posting
                self.store.note_error(record.id, error.code)
                log.warning("escalation id=%s still unconfirmed after retries: %s", record.id, error.code)
            except DeliveryError as error:
                permanent = not error.transient
                self.store.mark_failed(record.id, error.code, permanent=permanent)
                if permanent:
                    log.error("SAFEGUARDING ALERT NOT DELIVERED id=%s route=%s channel=%s: Slack error %s; fix the "
                              "configuration or invite the bot; it stays pending", record.id, record.route, channel, error.code)
                else:
                    log.warning("escalation id=%s still pending after retries: %s", record.id, error.code)
            return self.store.get(record.id)

    def _attempt(self, record: Escalation, channel: str, maybe_posted: bool) -> None:
        """One try: look first if an earlier try may have posted; claim; post."""
        if maybe_posted:
            found = self._find_posted(record.id, channel, record.sending_at)
            if found:
                self.store.mark_delivered(record.id, channel, found, detail="found in channel history")
                log.info("escalation id=%s already in channel %s; not posted again", record.id, channel)
                return
        self._check_audience(record, channel)
        if not self.store.claim(record.id, channel):
            return  # delivered or closed meanwhile
        text, blocks = build_alert(self.store.get(record.id))
        try:
            response = self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"escalation_id": record.id}})
        except Exception as exc:
            error = classify(exc)
            if error.transient and error.code != "ratelimited":  # a 5xx or a timeout may have posted it
                self.store.note_error(record.id, error.code)
                raise _Ambiguous(error) from None
            if error.transient:
                self.store.mark_failed(record.id, error.code, permanent=False)
            raise error from None
        self.store.mark_delivered(record.id, channel, response.get("ts") or "")
        log.info("escalation delivered id=%s route=%s channel=%s", record.id, record.route, channel)

    def _check_audience(self, record: Escalation, channel: str) -> None:
        """An allegation about the head must not go where the head reads it: check the channel's members."""
        heads = set(self.settings.routes(record.school).head_user_ids)
        if record.route != "staff-allegation" or not heads or not about_head(record, self.settings):
            return
        cursor = None
        for _ in range(20):
            try:
                response = self.client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            except Exception as exc:
                raise classify(exc) from None
            if heads & set(response.get("members") or []):
                raise DeliveryError(f"chair_channel {channel} includes the headteacher; use a channel they are not in", False)
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _find_posted(self, escalation_id: str, channel: str, since: str | None) -> str | None:
        """The ts of an alert for this escalation already in the channel, if any."""
        oldest = "0"
        if since:
            oldest = str(dt.datetime.fromisoformat(since).timestamp() - 120)
        try:
            response = self.client.conversations_history(channel=channel, oldest=oldest, limit=200, include_all_metadata=True)
        except Exception as exc:
            error = classify(exc)
            if error.transient:
                raise _Ambiguous(error)
            log.warning("escalation id=%s: cannot read channel history (%s); posting without the duplicate check",
                        escalation_id, error.code)
            return None
        for message in response.get("messages") or []:
            if _is_alert_for(message, escalation_id):
                return message.get("ts")
        return None

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

    # -- fallback ------------------------------------------------------------------------------

    def resend_unacknowledged(self) -> int:
        """Re-send alerts not acknowledged within the timeout to the school's fallback channel; returns how many."""
        timeout = dt.timedelta(minutes=self.settings.escalation.ack_timeout_minutes)
        sent = 0
        for record in self.store.unacknowledged(timeout):
            routes = self.settings.routes(record.school)
            fallback = routes.fallback_channel
            if not fallback or fallback == record.delivered_channel:
                continue
            if about_head(record, self.settings) and fallback == routes.head_channel:
                log.error("escalation id=%s: fallback channel is the head's channel; not re-sent there", record.id)
                continue
            text, blocks = build_alert(record, resent=True)
            try:
                self._check_audience(record, fallback)
                response = self.client.chat_postMessage(
                    channel=fallback, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                    metadata={"event_type": METADATA_EVENT, "event_payload": {"escalation_id": record.id, "fallback": True}})
            except Exception as exc:
                log.error("escalation id=%s: re-send to fallback failed: %s", record.id, classify(exc).code)
                continue
            self.store.mark_resent(record.id, fallback, response.get("ts") or "")
            log.warning("escalation id=%s not acknowledged in %s minutes; re-sent to fallback", record.id,
                        self.settings.escalation.ack_timeout_minutes)
            sent += 1
        return sent

    # -- the worker ----------------------------------------------------------------------------

    def sweep(self, include_permanent: bool = False) -> None:
        """Try every open escalation (permanent failures only when due) and re-send late ones."""
        import time

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


def _is_alert_for(message: dict, escalation_id: str) -> bool:
    """Our alert for this escalation: by message metadata, or by the buttons' block id."""
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    if payload.get("escalation_id") == escalation_id and not payload.get("fallback"):
        return True
    return any(isinstance(b, dict) and b.get("block_id") == f"escalation:{escalation_id}" for b in message.get("blocks") or [])


class _Ambiguous(DeliveryError):
    """A transient failure after which the alert may already be in the channel: look before posting again."""

    def __init__(self, error: DeliveryError):
        super().__init__(error.code, True, error.retry_after)
