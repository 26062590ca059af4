"""The shared SQLite connection: WAL, the caller's synchronous level, a busy timeout, a clear error without WAL."""

from __future__ import annotations

import sqlite3

import pytest

from bot import sqlite_db
from bot.escalation_store import EscalationStore
from bot.slack_state import SlackState
from index.errors import PolicyBotError

SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def pragma(db: sqlite3.Connection, name: str):
    return db.execute(f"PRAGMA {name}").fetchone()[0]


@pytest.mark.parametrize("level", ["FULL", "NORMAL"])
def test_connect_sets_wal_synchronous_and_busy_timeout(tmp_path, level):
    db = sqlite_db.connect(tmp_path / "db.sqlite3", synchronous=level)
    assert pragma(db, "journal_mode") == "wal"
    assert SYNCHRONOUS[pragma(db, "synchronous")] == level
    assert pragma(db, "busy_timeout") == 30000
    assert db.isolation_level is None


def test_each_store_keeps_its_own_synchronous_level(tmp_path):
    path = tmp_path / "policybot.sqlite3"
    assert SYNCHRONOUS[pragma(EscalationStore(path)._db, "synchronous")] == "FULL"
    assert SYNCHRONOUS[pragma(SlackState(path)._db, "synchronous")] == "NORMAL"


def test_a_database_that_cannot_use_wal_is_a_clear_error():
    with pytest.raises(PolicyBotError, match="Could not put :memory: in WAL mode .*local disk"):
        sqlite_db.connect(":memory:")  # an in-memory database reports journal_mode 'memory'


def test_an_unknown_synchronous_level_is_refused(tmp_path):
    with pytest.raises(ValueError, match="NORMAL"):
        sqlite_db.connect(tmp_path / "db.sqlite3", synchronous="FULL; DROP TABLE x")
