"""Open a PolicyBot SQLite database: WAL mode, a chosen synchronous level, a busy timeout.

Shared by the escalation store (synchronous=FULL: a recorded concern survives a
crash) and the Slack state (synchronous=NORMAL: losing the last vote is fine).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from index.errors import PolicyBotError

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_SECONDS = 30


def connect(path: str | Path, *, synchronous: str = "FULL", row_factory=None) -> sqlite3.Connection:
    """A connection in autocommit mode (callers run their own BEGIN IMMEDIATE), shareable across threads."""
    level = synchronous.upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}, not {synchronous!r}")
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise PolicyBotError(f"Could not put {path} in WAL mode (got {mode}); keep the database on a local disk.")
        db.execute(f"PRAGMA synchronous={level}")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    except BaseException:
        db.close()
        raise
    db.row_factory = row_factory
    return db
