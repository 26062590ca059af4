"""Safeguarding alerts in Slack: `AlertChannel` over a WebClient that never retries by itself.

The alert carries the escalation id in message metadata and in its buttons'
block id, so `find` can tell from the channel's history whether an earlier
attempt landed. A 5xx, a timeout or a dropped connection is "maybe posted".
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.escalation.alert import Alert
from bot.escalation.channel import DeliveryError
from bot.escalation.store import Escalation
from bot.slack.blocks import alert_blocks

log = logging.getLogger(__name__)

METADATA_EVENT = "policybot_escalation"
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "invalid_auth", "account_inactive", "is_archived", "token_revoked",
    "token_expired", "not_authed", "missing_scope", "restricted_action", "no_permission", "ekm_access_denied",
    "team_access_not_granted", "invalid_arguments", "invalid_blocks", "msg_too_long", "org_login_required",
})
TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})


class SlackAlertChannel:
    platform = "slack"

    def __init__(self, client: WebClient):
        # no retry handlers: a blind re-post after a 5xx that had posted is how alerts were tripled
        self.client = WebClient(token=client.token, base_url=client.base_url, timeout=client.timeout, retry_handlers=[])
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def post(self, record: Escalation, channel: str, alert: Alert) -> str:
        text, blocks = alert_blocks(alert)
        try:
            response = self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"escalation_id": record.id, "fallback": alert.resent}})
        except Exception as exc:
            raise classify(exc, sending=True) from None
        return str(response.get("ts") or "")

    def find(self, record: Escalation, channel: str, since: dt.datetime) -> str | None:
        try:
            response = self.client.conversations_history(channel=channel, oldest=str(since.timestamp()), limit=200,
                                                         include_all_metadata=True)
        except Exception as exc:
            error = classify(exc)
            if error.transient:
                raise DeliveryError(error.code, True, error.retry_after, maybe_posted=True) from None
            log.warning("escalation id=%s: cannot read channel history (%s); posting without the duplicate check", record.id, error.code)
            return None
        for message in response.get("messages") or []:
            if _is_alert_for(message, record.id):
                return message.get("ts")
        return None

    def update(self, record: Escalation, channel: str, message: str, alert: Alert) -> None:
        text, blocks = alert_blocks(alert)
        self.client.chat_update(channel=channel, ts=message, text=text, blocks=blocks)

    def includes(self, record: Escalation, channel: str, users: tuple[str, ...]) -> bool:
        cursor = None
        for _ in range(20):
            try:
                response = self.client.conversations_members(channel=channel, limit=1000, cursor=cursor)
            except Exception as exc:
                raise classify(exc) from None
            if set(users) & set(response.get("members") or []):
                return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return False
        return False

    def describe(self, channel: str) -> str:
        with self._lock:
            if channel not in self._names:
                try:
                    name = (self.client.conversations_info(channel=channel).get("channel") or {}).get("name")
                except SlackApiError:
                    name = None
                self._names[channel] = f"#{name}" if name else f"<#{channel}>"
            return self._names[channel]


def _is_alert_for(message: dict, escalation_id: str) -> bool:
    """Our alert for this escalation (not its fallback copy): by message metadata, or by the buttons' block id."""
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    if payload.get("escalation_id") == escalation_id and not payload.get("fallback"):
        return True
    return any(isinstance(b, dict) and b.get("block_id") == f"escalation:{escalation_id}" for b in message.get("blocks") or [])


def classify(exc: BaseException, sending: bool = False) -> DeliveryError:
    """A slack_sdk or network exception as a DeliveryError. `sending`: a 5xx or a network failure after the
    request went out may have posted."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        data = getattr(response, "data", None)
        code = data.get("error") if isinstance(data, dict) else None
        headers = {str(k).lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
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
            return DeliveryError(code or f"http_{status}", True, retry_after, maybe_posted=sending)
        if code:
            return DeliveryError(code, code not in PERMANENT and code.startswith("internal"), retry_after)
        return DeliveryError(f"http_{status}" if status else "bad_response", status == 0 or status >= 500, maybe_posted=sending)
    return DeliveryError(type(exc).__name__, True, maybe_posted=sending)  # timeouts, dropped connections, broken responses

