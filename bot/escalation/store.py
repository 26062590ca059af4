"""The durable record of every escalation, written before the platform hears back and before any delivery.

Once `record()` returns, the concern survives a crash (bot/storage/database.py:
SQLite with synchronous=FULL, or PostgreSQL). The dedupe key (the platform's
event) is UNIQUE, so a retried event can never create a second record. A record
is delivered under a lease: `claim()` marks it 'sending' to one channel for one
replica until the lease runs out, so two replicas never post it at once, and a
replica that died mid-post leaves it to another, which looks in the channel
before posting again. Every change is written to an audit table (who, what, when).

This module is the only code that holds a concern's words; logs get ids only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sqlalchemy import and_, delete, func, insert, or_, select, update

from bot.storage.database import Database
from bot.storage.owners import is_gone, process_owner
from bot.storage.schema import escalation_audit, escalations
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

PENDING, SENDING, DELIVERED, ACKNOWLEDGED, CLOSED, FAILED = (
    "pending", "sending", "delivered", "acknowledged", "closed", "failed_permanent")
OPEN = (PENDING, SENDING, FAILED)  # not yet in the recipient's channel
STATUSES = (PENDING, SENDING, DELIVERED, ACKNOWLEDGED, CLOSED, FAILED)
LEASE_SECONDS = 120  # a replica that claimed an alert and died frees it after this


class EscalationNotFound(PolicyBotError):
    pass


class NotInAlertChannel(EscalationNotFound):
    """A button pressed outside the channels the alert was posted in (a forwarded or crafted card): refused."""


@dataclass(frozen=True)
class EscalationRequest:
    """What the conversation core knows about an escalating message."""

    dedupe_key: str  # the platform's event: "slack:T1:C1:1700000000.0001", "teams:<activity id>"
    school: str
    route: str  # "dsl" | "staff-allegation"
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    about_head: bool
    raised_by: str | None  # a platform user id
    channel: str | None
    message_ts: str | None
    permalink: str | None
    text: str  # verbatim
    platform: str = "slack"
    reply_to: dict | None = None  # where the member of staff is told what happened
    target: dict | None = None  # the platform's facts for delivery (Teams: serviceUrl)


@dataclass(frozen=True)
class Escalation:
    id: str
    dedupe_key: str
    school: str
    route: str
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    about_head: bool
    raised_by: str | None
    raised_at: str
    channel: str | None
    message_ts: str | None
    permalink: str | None
    text: str
    status: str
    attempts: int
    last_error: str | None
    last_attempt_at: str | None
    sending_channel: str | None
    sending_at: str | None
    delivered_channel: str | None
    delivered_ts: str | None
    delivered_at: str | None
    acknowledged_by: str | None
    acknowledged_at: str | None
    closed_by: str | None
    closed_at: str | None
    resent_to_fallback_at: str | None
    fallback_channel: str | None
    fallback_ts: str | None
    platform: str = "slack"
    reply_to: dict | None = None
    notified_at: str | None = None
    target: dict | None = None
    lease_owner: str | None = None
    lease_until: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["categories"], data["reasons"] = list(self.categories), list(self.reasons)
        return data


@dataclass(frozen=True)
class AuditEntry:
    escalation_id: str
    at: str
    actor: str
    action: str
    detail: str | None


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(moment: dt.datetime) -> str:
    """UTC, to the microsecond: records raised in one second keep their order (newest first lists), on any database."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


class EscalationStore:
    """Escalations and their audit trail in the bot's database."""

    def __init__(self, database: Database | str | Path, now: Callable[[], dt.datetime] = utc_now, owner: str | None = None):
        self.db = Database.open(database)
        self._now = now
        self.owner = owner or process_owner()  # this process, for leases

    # -- writing -------------------------------------------------------------------------------

    def record(self, request: EscalationRequest) -> tuple[Escalation, bool]:
        """Store an escalation unless its dedupe key is known: (the record, whether it was created now)."""
        new_id = uuid.uuid4().hex
        at = _iso(self._now())
        with self.db.transaction() as db:
            created = db.execute(self.db.insert_ignoring_conflicts(escalations, ["dedupe_key"]).values(
                id=new_id, dedupe_key=request.dedupe_key, school=request.school, route=request.route,
                categories=json.dumps(list(request.categories)), reasons=json.dumps(list(request.reasons)),
                about_head=int(request.about_head), raised_by=request.raised_by, raised_at=at, channel=request.channel,
                message_ts=request.message_ts, permalink=request.permalink, text=request.text, status=PENDING, attempts=0,
                platform=request.platform, reply_to=_json(request.reply_to), target=_json(request.target))).rowcount == 1
            if created:
                self._audit(db, new_id, request.raised_by or "unknown", "raised", f"route={request.route}", at)
            row = db.execute(select(escalations).where(escalations.c.dedupe_key == request.dedupe_key)).mappings().one()
        record = _escalation(row)
        log.info("escalation %s id=%s school=%s route=%s categories=%s", "recorded" if created else "duplicate ignored",
                 record.id, record.school, record.route, ",".join(record.categories))
        return record, created

    def claim(self, escalation_id: str, channel: str) -> bool:
        """Mark an open record 'sending' to `channel` for this replica before posting; False when it is not open any
        more, or another replica holds a live lease on it."""
        now = self._now()
        at, until = _iso(now), _iso(now + dt.timedelta(seconds=LEASE_SECONDS))
        with self.db.transaction() as db:
            holder = db.execute(select(escalations.c.lease_owner).where(escalations.c.id == escalation_id)).scalar_one_or_none()
            free = or_(escalations.c.lease_owner.is_(None), escalations.c.lease_owner == self.owner, escalations.c.lease_until < at,
                       *([escalations.c.lease_owner == holder] if is_gone(holder) else []))
            done = db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.status.in_(OPEN), free).values(
                status=SENDING, sending_channel=channel, sending_at=at, attempts=escalations.c.attempts + 1, last_attempt_at=at,
                lease_owner=self.owner, lease_until=until)).rowcount == 1
            if done:
                self._audit(db, escalation_id, "policybot", "sending", f"channel={channel}", at)
        return done

    def mark_delivered(self, escalation_id: str, channel: str, ts: str, detail: str = "") -> None:
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.status.in_(OPEN)).values(
                status=DELIVERED, delivered_channel=channel, delivered_ts=ts, delivered_at=at, last_error=None,
                lease_owner=None, lease_until=None))
            self._audit(db, escalation_id, "policybot", "delivered", f"channel={channel} ts={ts} {detail}".strip(), at)

    def mark_failed(self, escalation_id: str, error: str, permanent: bool) -> None:
        """A failed attempt: back to pending (transient) or failed_permanent; either way still open."""
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.status.in_(OPEN)).values(
                status=FAILED if permanent else PENDING, last_error=error, last_attempt_at=at, lease_owner=None, lease_until=None))
            self._audit(db, escalation_id, "policybot", "failed_permanent" if permanent else "failed", error, at)

    def note_error(self, escalation_id: str, error: str) -> None:
        """Record the last error without changing the status (an unconfirmed post stays 'sending', maybe posted)."""
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id).values(last_error=error, last_attempt_at=at))
            self._audit(db, escalation_id, "policybot", "unconfirmed", error, at)

    def release(self, escalation_id: str) -> None:
        """Give up this replica's lease (an unconfirmed post, left for the next try to look for first)."""
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.lease_owner == self.owner)
                       .values(lease_owner=None, lease_until=None))

    def mark_notified(self, escalation_id: str) -> None:
        """The member of staff was told what happened to their concern."""
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.notified_at.is_(None))
                       .values(notified_at=at))

    def _pressed_in_alert_channel(self, record: Escalation, user: str, in_channel: str | None, action: str) -> None:
        """A button counts only in a channel the alert was posted in; elsewhere it is audited and refused."""
        if in_channel is None or in_channel in {c for c in (record.delivered_channel, record.fallback_channel) if c}:
            return
        at = _iso(self._now())
        with self.db.transaction() as db:
            self._audit(db, record.id, user, f"{action}_refused", "pressed outside the alert's channels", at)
        log.warning("escalation id=%s: %s pressed outside the alert's channels; refused", record.id, action)
        raise NotInAlertChannel(f"escalation {record.id} was not posted there")

    def acknowledge(self, escalation_id: str, user: str, in_channel: str | None = None) -> Escalation:
        """Record who acknowledged the alert (first acknowledgement wins; later ones are only audited). `in_channel`:
        where the button was pressed, which must be a channel the alert was posted in (None: the DSL's own CLI)."""
        record = self.get(escalation_id)
        self._pressed_in_alert_channel(record, user, in_channel, "acknowledge")
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == record.id).values(
                status=func.coalesce(_closed_or(ACKNOWLEDGED), ACKNOWLEDGED),
                acknowledged_by=func.coalesce(escalations.c.acknowledged_by, user),
                acknowledged_at=func.coalesce(escalations.c.acknowledged_at, at)))
            self._audit(db, record.id, user, "acknowledged", None, at)
        log.info("escalation acknowledged id=%s by=%s", record.id, user)
        return self.get(record.id)

    def close_escalation(self, escalation_id: str, user: str, in_channel: str | None = None) -> Escalation:
        """Record who closed the escalation, and when (`in_channel` as for `acknowledge`)."""
        record = self.get(escalation_id)
        self._pressed_in_alert_channel(record, user, in_channel, "close")
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == record.id).values(
                status=CLOSED, closed_by=func.coalesce(escalations.c.closed_by, user),
                closed_at=func.coalesce(escalations.c.closed_at, at),
                acknowledged_by=func.coalesce(escalations.c.acknowledged_by, user),
                acknowledged_at=func.coalesce(escalations.c.acknowledged_at, at)))
            self._audit(db, record.id, user, "closed", None, at)
        log.info("escalation closed id=%s by=%s", record.id, user)
        return self.get(record.id)

    def mark_resent(self, escalation_id: str, channel: str, ts: str) -> None:
        at = _iso(self._now())
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id).values(
                resent_to_fallback_at=at, fallback_channel=channel, fallback_ts=ts))
            self._audit(db, escalation_id, "policybot", "resent_to_fallback", f"channel={channel} ts={ts}", at)

    def claim_resend(self, escalation_id: str) -> bool:
        """Take the one re-alert of an unacknowledged alert for this replica (True once, across replicas). A claim whose
        re-alert never went out (the replica died posting it) is free again after `LEASE_SECONDS`."""
        now = self._now()
        with self.db.transaction() as db:
            return db.execute(update(escalations).where(escalations.c.id == escalation_id, self._resend_open(now))
                              .values(resent_to_fallback_at=_iso(now))).rowcount == 1

    def release_resend(self, escalation_id: str) -> None:
        """The re-alert could not be posted: the next sweep tries again."""
        with self.db.transaction() as db:
            db.execute(update(escalations).where(escalations.c.id == escalation_id, escalations.c.fallback_channel.is_(None))
                       .values(resent_to_fallback_at=None))

    @staticmethod
    def _resend_open(now: dt.datetime):
        """Not re-sent yet: never claimed, or claimed by a replica that did not post it within the lease."""
        stale = _iso(now - dt.timedelta(seconds=LEASE_SECONDS))
        return or_(escalations.c.resent_to_fallback_at.is_(None),
                   and_(escalations.c.fallback_channel.is_(None), escalations.c.resent_to_fallback_at < stale))

    def purge(self, retention_days: int) -> int:
        """Delete closed escalations (and their audit) raised more than `retention_days` ago; open ones are kept."""
        if retention_days < 0:
            raise PolicyBotError(f"Retention of {retention_days} days would delete today's records; "
                                 "set escalation.retention_days to 0 or more.")
        cutoff = _iso(self._now() - dt.timedelta(days=retention_days))
        with self.db.transaction() as db:
            ids = [r[0] for r in db.execute(select(escalations.c.id).where(escalations.c.status == CLOSED, escalations.c.raised_at < cutoff))]
            for start in range(0, len(ids), 500):
                part = ids[start: start + 500]
                db.execute(delete(escalation_audit).where(escalation_audit.c.escalation_id.in_(part)))
                db.execute(delete(escalations).where(escalations.c.id.in_(part)))
        log.info("purged %d closed escalations older than %d days", len(ids), retention_days)
        return len(ids)

    # -- reading -------------------------------------------------------------------------------

    def get(self, escalation_id: str) -> Escalation:
        """One record by id or unique id prefix (at least 6 characters)."""
        escalation_id = str(escalation_id)
        condition = escalations.c.id == escalation_id
        if len(escalation_id) >= 6:
            condition = or_(condition, escalations.c.id.startswith(escalation_id, autoescape=True))
        with self.db.reading() as db:
            rows = db.execute(select(escalations).where(condition).limit(2)).mappings().all()
        if len(rows) != 1:
            raise EscalationNotFound(f"No single escalation with id {escalation_id!r}; run `policybot escalations list` for ids.")
        return _escalation(rows[0])

    def list(self, status: str | None = None, school: str | None = None, limit: int | None = None) -> list[Escalation]:
        """Newest first, optionally filtered by status and school."""
        query = select(escalations)
        if status:
            query = query.where(escalations.c.status == status)
        if school:
            query = query.where(escalations.c.school == school)
        query = query.order_by(escalations.c.raised_at.desc(), escalations.c.id.desc())
        if limit:
            query = query.limit(limit)
        with self.db.reading() as db:
            return [_escalation(r) for r in db.execute(query).mappings()]

    def open_records(self) -> list[Escalation]:
        """Everything not yet in a recipient's channel, oldest first."""
        with self.db.reading() as db:
            rows = db.execute(select(escalations).where(escalations.c.status.in_(OPEN))
                              .order_by(escalations.c.raised_at, escalations.c.id)).mappings()
            return [_escalation(r) for r in rows]

    def unacknowledged(self, older_than: dt.timedelta) -> list[Escalation]:
        """Delivered, not acknowledged within `older_than`, and not yet re-sent to the fallback."""
        cutoff = _iso(self._now() - older_than)
        with self.db.reading() as db:
            rows = db.execute(select(escalations).where(escalations.c.status == DELIVERED, escalations.c.delivered_at <= cutoff,
                                                        self._resend_open(self._now()))
                              .order_by(escalations.c.delivered_at)).mappings()
            return [_escalation(r) for r in rows]

    def unnotified(self, older_than: dt.timedelta = dt.timedelta(0)) -> list[Escalation]:
        """Recorded at least `older_than` ago, and the member of staff not yet told (a crash came between)."""
        cutoff = _iso(self._now() - older_than)
        with self.db.reading() as db:
            rows = db.execute(select(escalations).where(escalations.c.notified_at.is_(None), escalations.c.reply_to.is_not(None),
                                                        escalations.c.raised_at <= cutoff)
                              .order_by(escalations.c.raised_at)).mappings()
            return [_escalation(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.db.reading() as db:
            return {r[0]: r[1] for r in db.execute(select(escalations.c.status, func.count()).group_by(escalations.c.status))}

    def audit(self, escalation_id: str) -> list[AuditEntry]:
        with self.db.reading() as db:
            rows = db.execute(select(escalation_audit.c.escalation_id, escalation_audit.c.at, escalation_audit.c.actor,
                                     escalation_audit.c.action, escalation_audit.c.detail)
                              .where(escalation_audit.c.escalation_id == escalation_id).order_by(escalation_audit.c.seq))
            return [AuditEntry(*r) for r in rows]

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _audit(db, escalation_id: str, actor: str, action: str, detail: str | None, at: str) -> None:
        db.execute(insert(escalation_audit).values(escalation_id=escalation_id, at=at, actor=actor, action=action, detail=detail))


def _closed_or(status: str):
    """CLOSED stays closed; anything else becomes `status` (a SQL CASE)."""
    from sqlalchemy import case

    return case((escalations.c.status == CLOSED, CLOSED), else_=status)


def _json(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


_FIELDS = {f.name for f in fields(Escalation)}


def _escalation(row) -> Escalation:
    data = {key: row[key] for key in _FIELDS if key in row}
    data["categories"] = tuple(json.loads(data["categories"]))
    data["reasons"] = tuple(json.loads(data["reasons"]))
    data["about_head"] = bool(data["about_head"])
    for key in ("reply_to", "target"):
        data[key] = json.loads(data[key]) if data.get(key) else None
    return Escalation(**data)
