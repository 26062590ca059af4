"""The tables, as SQLAlchemy Core sees them. Their history is in bot/storage/migrations/."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

escalations = Table(
    "escalations", metadata,
    Column("id", String, primary_key=True),
    Column("dedupe_key", String, nullable=False, unique=True),
    Column("school", String, nullable=False),
    Column("route", String, nullable=False),
    Column("categories", Text, nullable=False),  # JSON list
    Column("reasons", Text, nullable=False),  # JSON list, one per category
    Column("about_head", Integer, nullable=False, default=0),
    Column("raised_by", String),
    Column("raised_at", String, nullable=False),
    Column("channel", String),
    Column("message_ts", String),
    Column("permalink", String),
    Column("text", Text, nullable=False),  # the staff member's words exactly as written
    Column("status", String, nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String),
    Column("last_attempt_at", String),
    Column("sending_channel", String),
    Column("sending_at", String),
    Column("delivered_channel", String),
    Column("delivered_ts", String),
    Column("delivered_at", String),
    Column("acknowledged_by", String),
    Column("acknowledged_at", String),
    Column("closed_by", String),
    Column("closed_at", String),
    Column("resent_to_fallback_at", String),
    Column("fallback_channel", String),
    Column("fallback_ts", String),
    # since migration 0002
    Column("platform", String, nullable=False, default="slack"),  # where it was raised and where its alert goes
    Column("reply_to", Text),  # JSON: where the member of staff is told what happened (a crash before telling them is mended)
    Column("notified_at", String),  # when the member of staff was told
    Column("target", Text),  # JSON: the platform's facts for delivery (Teams: the serviceUrl that raised it)
    Column("lease_owner", String),  # the replica posting it now
    Column("lease_until", String),
)

escalation_audit = Table(
    "escalation_audit", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("escalation_id", String, nullable=False),
    Column("at", String, nullable=False),
    Column("actor", String, nullable=False),  # a platform user id, or 'policybot'
    Column("action", String, nullable=False),
    Column("detail", Text),
)

handled_events = Table(
    "handled_events", metadata,
    Column("key", String, primary_key=True),  # Slack: team:channel:ts; Teams: teams:<conversation>:<activity id>
    Column("owner", String, nullable=False),  # the process that claimed it
    Column("status", String, nullable=False),  # 'pending' while answering, 'done' once the reply went
    Column("claimed_at", Float, nullable=False),
    Column("done_at", Float),
)

school_choices = Table(
    "school_choices", metadata,
    Column("user_id", String, primary_key=True),  # a Slack user id, or teams:<Entra object id>
    Column("school", String, nullable=False),
    Column("chosen_at", Float, nullable=False),
)

feedback = Table(
    "feedback", metadata,
    Column("question_id", String, primary_key=True),
    Column("user_id", String, primary_key=True),
    Column("school", String),
    Column("policy", String),
    Column("section", String),
    Column("vote", String, nullable=False),  # 'helpful' | 'not_helpful'
    Column("voted_at", Float, nullable=False),
)

declines = Table(  # what staff ask that no loaded policy answers: counts only, never the question
    "declines", metadata,
    Column("week", String, primary_key=True),  # ISO week, 2026-W49
    Column("school", String, primary_key=True),
    Column("area", String, primary_key=True),  # the nearest area of index/areas.yaml, or '' when none is near
    Column("count", Integer, nullable=False, default=0),
)
