"""Bolt action handlers for the alert's Acknowledge and Close buttons.

Only translation: the click becomes a store call (who, when) and the alert is
redrawn with `chat.update`. The store keeps the audit trail.
"""

from __future__ import annotations

import logging

from bot.escalation_delivery import ACK_ACTION, CLOSE_ACTION, build_alert
from bot.escalation_store import EscalationNotFound, EscalationStore

log = logging.getLogger(__name__)


def register_escalation_actions(app, store: EscalationStore) -> None:
    """Add the Acknowledge and Close button handlers to a slack_bolt `App`."""

    def handle(action_name: str):
        def handler(ack, body, action, client):
            ack()
            user = (body.get("user") or {}).get("id") or "unknown"
            escalation_id = action.get("value") or ""
            try:
                if action_name == "acknowledge":
                    record = store.acknowledge(escalation_id, user)
                else:
                    record = store.close_escalation(escalation_id, user)
            except EscalationNotFound:
                log.warning("escalation button for unknown id=%s by=%s", escalation_id, user)
                return
            channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
            ts = (body.get("message") or {}).get("ts") or (body.get("container") or {}).get("message_ts")
            if channel and ts:
                text, blocks = build_alert(record, resent=channel == record.fallback_channel and ts == record.fallback_ts)
                try:
                    client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
                except Exception as exc:  # the record is already saved; a stale message is only cosmetic
                    log.warning("escalation id=%s: could not update the alert message (%s)", record.id, type(exc).__name__)

        handler.__name__ = f"escalation_{action_name}"
        return handler

    app.action(ACK_ACTION)(handle("acknowledge"))
    app.action(CLOSE_ACTION)(handle("close"))
