"""One small interface per chat platform for safeguarding alerts; the store, retries and re-alerting are written once.

A platform's alert channel posts an alert, finds one it may already have posted,
redraws one after it is acknowledged, and names a channel for the member of
staff. It never retries by itself: `bot.escalation.delivery` decides, and looks
before it posts again after any attempt that may have landed.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from bot.escalation.alert import Alert
from bot.escalation.store import Escalation


class DeliveryError(Exception):
    """One failed call to the platform, classified. `maybe_posted`: it may have landed (a timeout, a 5xx after
    sending), so the next attempt must look in the channel first."""

    def __init__(self, code: str, transient: bool, retry_after: float | None = None, maybe_posted: bool = False):
        super().__init__(code)
        self.code, self.transient, self.retry_after, self.maybe_posted = code, transient, retry_after, maybe_posted


class AlertChannel(Protocol):
    platform: str  # "slack" | "teams"

    def post(self, record: Escalation, channel: str, alert: Alert) -> str:
        """Post the alert; returns the platform's id for the message. Raises DeliveryError."""

    def find(self, record: Escalation, channel: str, since: dt.datetime) -> str | None:
        """The id of this escalation's alert already in the channel, if any. Raises DeliveryError when it cannot tell."""

    def update(self, record: Escalation, channel: str, message: str, alert: Alert) -> None:
        """Redraw a posted alert (acknowledged, closed)."""

    def includes(self, record: Escalation, channel: str, users: tuple[str, ...]) -> bool:
        """Whether any of the users can read the channel (the head must not read an allegation about them), asked
        where the record's alert goes."""

    def describe(self, channel: str) -> str:
        """The channel as the member of staff knows it ("#dsl-team")."""
