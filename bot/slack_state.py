"""What the Slack adapter must remember across restarts, in SQLite (WAL mode).

- handled events: one answer per question, also when Slack retries or the process restarts;
- school choices: which school a trust's central staff member picked;
- feedback votes: question id + vote, never the question text.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from bot import sqlite_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS slack_handled_events (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,          -- 'pending' while answering, 'done' once the reply was posted
    claimed_at REAL NOT NULL,
    done_at REAL
);
CREATE TABLE IF NOT EXISTS slack_school_choices (
    user_id TEXT PRIMARY KEY,
    school TEXT NOT NULL,
    chosen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS slack_feedback (
    question_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    school TEXT,
    vote TEXT NOT NULL CHECK (vote IN ('helpful', 'not_helpful')),
    voted_at REAL NOT NULL,
    PRIMARY KEY (question_id, user_id)
);
"""


class SlackState:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.owner = uuid.uuid4().hex  # this process; a pending claim from another owner was left by a dead process
        self._lock = threading.Lock()
        self._db = sqlite_db.connect(self.path, synchronous="NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # handled events ------------------------------------------------------------------------------
    def claim(self, key: str) -> bool:
        """True when this process should handle the event: first delivery, or left pending by a process that died."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT owner, status FROM slack_handled_events WHERE key = ?", (key,)).fetchone()
                if row is None:
                    self._db.execute("INSERT INTO slack_handled_events (key, owner, status, claimed_at) VALUES (?, ?, 'pending', ?)",
                                     (key, self.owner, now))
                    taken = True
                elif row[1] == "pending" and row[0] != self.owner:
                    self._db.execute("UPDATE slack_handled_events SET owner = ?, claimed_at = ? WHERE key = ?", (self.owner, now, key))
                    taken = True
                else:
                    taken = False
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return taken

    def finish(self, key: str) -> None:
        with self._lock:
            self._db.execute("UPDATE slack_handled_events SET status = 'done', done_at = ? WHERE key = ?", (time.time(), key))

    def release(self, key: str) -> None:
        """Forget a claim whose reply could not be posted, so Slack's retry can try again."""
        with self._lock:
            self._db.execute("DELETE FROM slack_handled_events WHERE key = ? AND status = 'pending'", (key,))

    def event_status(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM slack_handled_events WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def forget_events_before(self, seconds_ago: float) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM slack_handled_events WHERE status = 'done' AND done_at < ?", (time.time() - seconds_ago,))
        return cur.rowcount

    # school choices ------------------------------------------------------------------------------
    def choose_school(self, user_id: str, school: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO slack_school_choices (user_id, school, chosen_at) VALUES (?, ?, ?) "
                "ON CONFLICT(user_id) DO UPDATE SET school = excluded.school, chosen_at = excluded.chosen_at",
                (user_id, school, time.time()),
            )

    def chosen_school(self, user_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT school FROM slack_school_choices WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else None

    # feedback ------------------------------------------------------------------------------------
    def record_vote(self, question_id: str, user_id: str, vote: str, school: str | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO slack_feedback (question_id, user_id, school, vote, voted_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(question_id, user_id) DO UPDATE SET vote = excluded.vote, voted_at = excluded.voted_at",
                (question_id, user_id, school, vote, time.time()),
            )

    def votes(self) -> list[tuple[str, str, str | None, str]]:
        with self._lock:
            return self._db.execute("SELECT question_id, user_id, school, vote FROM slack_feedback ORDER BY voted_at").fetchall()

    def counts(self) -> dict[str, int]:
        with self._lock:
            handled = self._db.execute("SELECT COUNT(*) FROM slack_handled_events").fetchone()[0]
            helpful = self._db.execute("SELECT COUNT(*) FROM slack_feedback WHERE vote = 'helpful'").fetchone()[0]
            not_helpful = self._db.execute("SELECT COUNT(*) FROM slack_feedback WHERE vote = 'not_helpful'").fetchone()[0]
        return {"handled_events": handled, "helpful": helpful, "not_helpful": not_helpful}
