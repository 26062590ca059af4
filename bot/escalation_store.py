"""The durable record of every escalation, written before any delivery is attempted.

SQLite in WAL mode with synchronous=FULL: once `record()` returns, the concern
survives a crash. The dedupe key (Slack team + event id, or channel + ts) is
UNIQUE, so a retried event can never create a second record. Every change is
written to an audit table (who did what, when). One process owns a database.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot import sqlite_db
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

PENDING, SENDING, DELIVERED, ACKNOWLEDGED, CLOSED, FAILED = (
    "pending", "sending", "delivered", "acknowledged", "closed", "failed_permanent")
OPEN = (PENDING, SENDING, FAILED)  # not yet in the recipient's channel
STATUSES = (PENDING, SENDING, DELIVERED, ACKNOWLEDGED, CLOSED, FAILED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    school TEXT NOT NULL,
    route TEXT NOT NULL,
    categories TEXT NOT NULL,        -- JSON list
    reasons TEXT NOT NULL,           -- JSON list, one per category
    about_head INTEGER NOT NULL DEFAULT 0,
    raised_by TEXT,
    raised_at TEXT NOT NULL,
    channel TEXT,
    message_ts TEXT,
    permalink TEXT,
    text TEXT NOT NULL,              -- the staff member's words exactly as written
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at TEXT,
    sending_channel TEXT,
    sending_at TEXT,
    delivered_channel TEXT,
    delivered_ts TEXT,
    delivered_at TEXT,
    acknowledged_by TEXT,
    acknowledged_at TEXT,
    closed_by TEXT,
    closed_at TEXT,
    resent_to_fallback_at TEXT,
    fallback_channel TEXT,
    fallback_ts TEXT
);
CREATE INDEX IF NOT EXISTS escalations_status ON escalations(status);
CREATE TABLE IF NOT EXISTS escalation_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    escalation_id TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,             -- a Slack user id, or 'policybot'
    action TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS escalation_audit_id ON escalation_audit(escalation_id);
"""


class EscalationNotFound(PolicyBotError):
    pass


@dataclass(frozen=True)
class EscalationRequest:
    """What the chat adapter knows about an escalating message."""

    dedupe_key: str  # e.g. f"{team_id}:{event_id}" or f"{channel}:{ts}"
    school: str
    route: str  # "dsl" | "staff-allegation"
    categories: tuple[str, ...]
    reasons: tuple[str, ...]
    about_head: bool
    raised_by: str | None  # a Slack user id
    channel: str | None
    message_ts: str | None
    permalink: str | None
    text: str  # verbatim


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

    def to_json(self) -> dict:
        from dataclasses import asdict

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
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


class EscalationStore:
    """Escalations and their audit trail in one SQLite file (WAL mode, durable writes)."""

    def __init__(self, path: str | Path, now: Callable[[], dt.datetime] = utc_now):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._now = now
        self._lock = threading.RLock()
        self._db = sqlite_db.connect(self.path, synchronous="FULL", row_factory=sqlite3.Row)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    # -- writing -------------------------------------------------------------------------------

    def record(self, request: EscalationRequest) -> tuple[Escalation, bool]:
        """Store an escalation unless its dedupe key is known: (the record, whether it was created now)."""
        new_id = uuid.uuid4().hex
        at = _iso(self._now())
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT INTO escalations (id, dedupe_key, school, route, categories, reasons, about_head, raised_by, raised_at,"
                " channel, message_ts, permalink, text, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(dedupe_key) DO NOTHING",
                (new_id, request.dedupe_key, request.school, request.route, json.dumps(list(request.categories)),
                 json.dumps(list(request.reasons)), int(request.about_head), request.raised_by, at, request.channel,
                 request.message_ts, request.permalink, request.text, PENDING),
            )
            created = cursor.rowcount == 1
            if created:
                self._audit(new_id, request.raised_by or "unknown", "raised", f"route={request.route}", at)
            row = self._db.execute("SELECT * FROM escalations WHERE dedupe_key = ?", (request.dedupe_key,)).fetchone()
        record = _escalation(row)
        log.info("escalation %s id=%s school=%s route=%s categories=%s", "recorded" if created else "duplicate ignored",
                 record.id, record.school, record.route, ",".join(record.categories))
        return record, created

    def claim(self, escalation_id: str, channel: str) -> bool:
        """Mark an open record 'sending' to `channel` before posting; False if it is not open any more."""
        at = _iso(self._now())
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "UPDATE escalations SET status=?, sending_channel=?, sending_at=?, attempts=attempts+1, last_attempt_at=?"
                " WHERE id=? AND status IN (?,?,?)", (SENDING, channel, at, at, escalation_id, *OPEN))
            if cursor.rowcount:
                self._audit(escalation_id, "policybot", "sending", f"channel={channel}", at)
            return cursor.rowcount == 1

    def mark_delivered(self, escalation_id: str, channel: str, ts: str, detail: str = "") -> None:
        at = _iso(self._now())
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE escalations SET status=?, delivered_channel=?, delivered_ts=?, delivered_at=?, last_error=NULL"
                " WHERE id=? AND status IN (?,?,?)", (DELIVERED, channel, ts, at, escalation_id, *OPEN))
            self._audit(escalation_id, "policybot", "delivered", f"channel={channel} ts={ts} {detail}".strip(), at)

    def mark_failed(self, escalation_id: str, error: str, permanent: bool) -> None:
        """A failed attempt: back to pending (transient) or failed_permanent; either way still open."""
        at = _iso(self._now())
        status = FAILED if permanent else PENDING
        with self._lock, self._transaction():
            self._db.execute("UPDATE escalations SET status=?, last_error=?, last_attempt_at=? WHERE id=? AND status IN (?,?,?)",
                             (status, error, at, escalation_id, *OPEN))
            self._audit(escalation_id, "policybot", "failed_permanent" if permanent else "failed", error, at)

    def note_error(self, escalation_id: str, error: str) -> None:
        """Record the last error without changing the status (e.g. an unconfirmed post stays 'sending')."""
        at = _iso(self._now())
        with self._lock, self._transaction():
            self._db.execute("UPDATE escalations SET last_error=?, last_attempt_at=? WHERE id=?", (error, at, escalation_id))
            self._audit(escalation_id, "policybot", "unconfirmed", error, at)

    def acknowledge(self, escalation_id: str, user: str) -> Escalation:
        """Record who acknowledged the alert (first acknowledgement wins; later ones are only audited)."""
        escalation_id = self.get(escalation_id).id
        return self._act(escalation_id, user, "acknowledged",
                         "UPDATE escalations SET status=CASE WHEN status=? THEN status ELSE ? END,"
                         " acknowledged_by=COALESCE(acknowledged_by, ?), acknowledged_at=COALESCE(acknowledged_at, ?) WHERE id=?",
                         lambda at: (CLOSED, ACKNOWLEDGED, user, at, escalation_id))

    def close_escalation(self, escalation_id: str, user: str) -> Escalation:
        """Record who closed the escalation, and when."""
        escalation_id = self.get(escalation_id).id
        return self._act(escalation_id, user, "closed",
                         "UPDATE escalations SET status=?, closed_by=COALESCE(closed_by, ?), closed_at=COALESCE(closed_at, ?),"
                         " acknowledged_by=COALESCE(acknowledged_by, ?), acknowledged_at=COALESCE(acknowledged_at, ?) WHERE id=?",
                         lambda at: (CLOSED, user, at, user, at, escalation_id))

    def mark_resent(self, escalation_id: str, channel: str, ts: str) -> None:
        at = _iso(self._now())
        with self._lock, self._transaction():
            self._db.execute("UPDATE escalations SET resent_to_fallback_at=?, fallback_channel=?, fallback_ts=? WHERE id=?",
                             (at, channel, ts, escalation_id))
            self._audit(escalation_id, "policybot", "resent_to_fallback", f"channel={channel} ts={ts}", at)

    def purge(self, retention_days: int) -> int:
        """Delete closed escalations (and their audit) raised more than `retention_days` ago; open ones are kept."""
        if retention_days < 0:
            raise PolicyBotError(f"Retention of {retention_days} days would delete today's records; "
                                 "set escalation.retention_days to 0 or more.")
        cutoff = _iso(self._now() - dt.timedelta(days=retention_days))
        with self._lock, self._transaction():
            ids = [r[0] for r in self._db.execute("SELECT id FROM escalations WHERE status=? AND raised_at < ?", (CLOSED, cutoff))]
            for chunk in range(0, len(ids), 500):
                part = ids[chunk: chunk + 500]
                marks = ",".join("?" * len(part))
                self._db.execute(f"DELETE FROM escalation_audit WHERE escalation_id IN ({marks})", part)
                self._db.execute(f"DELETE FROM escalations WHERE id IN ({marks})", part)
        log.info("purged %d closed escalations older than %d days", len(ids), retention_days)
        return len(ids)

    # -- reading -------------------------------------------------------------------------------

    def get(self, escalation_id: str) -> Escalation:
        """One record by id or unique id prefix (at least 6 characters)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM escalations WHERE id = ? OR (length(?) >= 6 AND substr(id, 1, length(?)) = ?)"
                                    " LIMIT 2", (escalation_id, escalation_id, escalation_id, escalation_id)).fetchall()
        if len(rows) != 1:
            raise EscalationNotFound(f"No single escalation with id {escalation_id!r}; run `policybot escalations list` for ids.")
        return _escalation(rows[0])

    def list(self, status: str | None = None, school: str | None = None, limit: int | None = None) -> list[Escalation]:
        """Newest first, optionally filtered by status and school."""
        sql, args = "SELECT * FROM escalations WHERE 1=1", []
        if status:
            sql, args = sql + " AND status = ?", args + [status]
        if school:
            sql, args = sql + " AND school = ?", args + [school]
        sql += " ORDER BY raised_at DESC, rowid DESC"
        if limit:
            sql, args = sql + " LIMIT ?", args + [limit]
        with self._lock:
            return [_escalation(r) for r in self._db.execute(sql, args)]

    def open_records(self) -> list[Escalation]:
        """Everything not yet in a recipient's channel, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM escalations WHERE status IN (?,?,?) ORDER BY raised_at, rowid", OPEN)
            return [_escalation(r) for r in rows]

    def unacknowledged(self, older_than: dt.timedelta) -> list[Escalation]:
        """Delivered, not acknowledged within `older_than`, and not yet re-sent to the fallback."""
        cutoff = _iso(self._now() - older_than)
        with self._lock:
            rows = self._db.execute("SELECT * FROM escalations WHERE status=? AND delivered_at <= ? AND resent_to_fallback_at IS NULL"
                                    " ORDER BY delivered_at", (DELIVERED, cutoff))
            return [_escalation(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {r[0]: r[1] for r in self._db.execute("SELECT status, count(*) FROM escalations GROUP BY status")}

    def audit(self, escalation_id: str) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute("SELECT escalation_id, at, actor, action, detail FROM escalation_audit"
                                    " WHERE escalation_id=? ORDER BY seq", (escalation_id,))
            return [AuditEntry(*r) for r in rows]

    # -- internals -----------------------------------------------------------------------------

    def _act(self, escalation_id: str, user: str, action: str, sql: str, args) -> Escalation:
        record = self.get(escalation_id)
        at = _iso(self._now())
        with self._lock, self._transaction():
            self._db.execute(sql, args(at))
            self._audit(record.id, user, action, None, at)
        log.info("escalation %s id=%s by=%s", action, record.id, user)
        return self.get(record.id)

    def _audit(self, escalation_id: str, actor: str, action: str, detail: str | None, at: str) -> None:
        self._db.execute("INSERT INTO escalation_audit (escalation_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
                         (escalation_id, at, actor, action, detail))

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb):
        self.db.execute("ROLLBACK" if kind else "COMMIT")
        return False


def _escalation(row: sqlite3.Row) -> Escalation:
    data = dict(row)
    data["categories"] = tuple(json.loads(data["categories"]))
    data["reasons"] = tuple(json.loads(data["reasons"]))
    data["about_head"] = bool(data["about_head"])
    return Escalation(**data)
