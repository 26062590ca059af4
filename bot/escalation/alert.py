"""A safeguarding alert as facts, in the CPOMS/MyConcern style: who raised it, when, where, the category, the words.

Built from the stored record only (never from anything the bot did not store)
and rendered by each platform's alert channel (bot/slack/alerts.py,
bot/teams/alerts.py), with the buttons to acknowledge and close it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.escalation.store import CLOSED, Escalation

TITLES = {"dsl": "Safeguarding concern", "head": "Allegation about an adult who works with children",
          "chair": "Allegation about the headteacher"}
ROUTE_LABELS = {"dsl": "DSL (concern about a child)", "head": "Allegation about an adult (headteacher)",
                "chair": "Allegation about the headteacher (chair of governors)"}


@dataclass(frozen=True)
class Alert:
    escalation_id: str
    title: str
    raised_by: str | None  # a platform user id
    raised_at: dt.datetime
    where: str | None  # the channel or chat it was raised in
    permalink: str | None
    school: str
    route_label: str
    categories: tuple[tuple[str, str], ...]  # (category, why)
    words: str  # verbatim
    acknowledged: tuple[str, str] | None  # (by, at)
    closed: tuple[str, str] | None
    resent: bool  # NOT ACKNOWLEDGED: re-sent to the fallback channel
    fallback_note: str | None  # why it is in this channel rather than the route's own
    can_acknowledge: bool
    can_close: bool


def recipient(record: Escalation) -> str:
    if record.route == "staff-allegation":
        return "chair" if record.about_head else "head"
    return "dsl"


def build_alert(record: Escalation, *, resent: bool = False, fallback_note: str | None = None) -> Alert:
    who = recipient(record)
    title = TITLES[who]
    if resent:
        title = "NOT ACKNOWLEDGED: " + title
    return Alert(
        escalation_id=record.id, title=title, raised_by=record.raised_by,
        raised_at=dt.datetime.fromisoformat(record.raised_at), where=record.channel, permalink=record.permalink,
        school=record.school, route_label=ROUTE_LABELS[who], categories=tuple(zip(record.categories, record.reasons)),
        words=record.text, acknowledged=(record.acknowledged_by, record.acknowledged_at or "") if record.acknowledged_by else None,
        closed=(record.closed_by, record.closed_at or "") if record.closed_by else None, resent=resent, fallback_note=fallback_note,
        can_acknowledge=not record.acknowledged_by and record.status != CLOSED, can_close=record.status != CLOSED)
