"""The bot's durable state on both backends: SQLite in a temporary folder, and a real PostgreSQL server.

Every test taking `database`, `replicas` or `database_url` runs twice, `[sqlite]` and `[postgresql]`; the
PostgreSQL runs are skipped, with the reason, where PostgreSQL is not installed (tests/postgres.py).
"Two replicas" are two Database objects, each with its own engine and connections, on one database.
"""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text

from bot.core.state import ConversationState
from bot.escalation.store import LEASE_SECONDS, EscalationNotFound, EscalationRequest, EscalationStore
from bot.storage.database import MIGRATIONS, Database, DatabaseError
from bot.storage.owners import is_gone
from bot.storage.schema import school_choices
from index.errors import PolicyBotError
from tests.postgres import postgres_server, postgres_url  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parent.parent
HEAD = "0002"
TABLES = {"escalations", "escalation_audit", "handled_events", "school_choices", "feedback", "declines", "alembic_version"}
WORDS = ("  A Year 9 told me her stepdad <hits> her & she's scared 😟\n— don't tell anyone, she said  \r\n"
         "\t'quotes' \"double\" back\\slash 100% _under_ Zoë Ørsted 日本語 <script>alert(1)</script> &amp;\n\n")
THREADS = 8


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A new, empty database: a SQLite file, or a database of its own on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'policybot.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def open_database(database_url):
    """Opens the test's database (one more replica each call); all are closed afterwards."""
    opened = []

    def open_() -> Database:
        opened.append(Database(database_url))
        return opened[-1]

    yield open_
    for database in opened:
        database.close()


@pytest.fixture
def database(open_database) -> Database:
    return open_database()


@pytest.fixture
def replicas(open_database) -> tuple[Database, Database]:
    return open_database(), open_database()


def request(key: str = "slack:T1:D123:1700000000.000100", **changes) -> EscalationRequest:
    base = dict(dedupe_key=key, school="mill-lane", route="dsl", categories=("physical-abuse", "domestic-abuse"),
                reasons=("terms: hits", "terms: stepdad"), about_head=False, raised_by="USTAFF", channel="D123",
                message_ts="1700000000.000100", permalink="https://test.slack.com/archives/D123/p1700000000000100", text=WORDS)
    base.update(changes)
    return EscalationRequest(**base)


def at_once(*calls):
    """Run the calls in threads released together; their results in order (the first error is raised)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result(timeout=60) for future in [pool.submit(run, call) for call in calls]]


def gone_owner() -> str:
    """A claim owner naming a process of this host that has exited."""
    child = subprocess.Popen(["true"])
    child.wait()
    owner = f"{socket.gethostname()}:{child.pid}:00000000"
    assert is_gone(owner)
    return owner


def version_rows(database: Database) -> list[str]:
    with database.reading() as db:
        return [row[0] for row in db.execute(text("SELECT version_num FROM alembic_version"))]


def wait_until_blocked(database: Database) -> None:
    """Until another connection waits for a lock this test holds (SQLite cannot tell: a moment's pause)."""
    if database.dialect != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with database.reading() as db:
            if db.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                               " AND wait_event_type = 'Lock'")).scalar_one():
                return
        time.sleep(0.01)
    raise AssertionError("the second write never waited for the first")


# -- the database and its migrations ---------------------------------------------------------------

def test_opening_applies_the_migrations_once_and_reopening_changes_nothing(open_database):
    first = open_database()
    assert first.migrations_applied == ("0001", HEAD)
    assert TABLES <= set(inspect(first.engine).get_table_names())
    ConversationState(first).choose_school("U1", "mill-lane")

    again = open_database()
    assert again.migrations_applied == ()
    assert version_rows(again) == [HEAD]
    assert ConversationState(again).chosen_school("U1") == "mill-lane"


OPEN_WHEN_TOLD = """
import pathlib, sys, time
from bot.storage.database import Database
url, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.002)
database = Database(url)
print(" ".join(database.migrations_applied) or "-")
database.close()
"""


def test_replica_processes_opening_a_new_database_together_migrate_it_once(database_url, tmp_path):
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{n}" for n in range(4)]
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_WHEN_TOLD, database_url, str(ready), str(go)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ready in readies]
    deadline = time.monotonic() + 30
    while not all(ready.exists() for ready in readies) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, [err for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["-", "-", "-", f"0001 {HEAD}"]
    database = Database(database_url)
    assert version_rows(database) == [HEAD] and database.migrations_applied == ()
    database.close()


def test_replica_engines_opening_a_new_database_together_migrate_it_once(database_url):
    opened = at_once(*[lambda: Database(database_url)] * 6)
    try:
        assert sorted(database.migrations_applied for database in opened) == [()] * 5 + [("0001", HEAD)]
        assert version_rows(opened[0]) == [HEAD]
    finally:
        for database in opened:
            database.close()


def test_a_database_of_the_releases_before_migrations_keeps_its_rows(database_url):
    """Those releases made 0001's tables without alembic's version table; opening it adopts and migrates them."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as db:
        config.attributes["connection"] = db
        command.upgrade(config, "0001")
        db.execute(text("DROP TABLE alembic_version"))
        db.execute(text("INSERT INTO escalations (id, dedupe_key, school, route, categories, reasons, raised_at, text)"
                        " VALUES ('e1', 'T1:Ev1', 'mill-lane', 'dsl', '[\"neglect\"]', '[\"terms: hungry\"]',"
                        " '2025-01-01T09:00:00+00:00', :words)"), {"words": WORDS})
        db.execute(text("INSERT INTO escalation_audit (escalation_id, at, actor, action) VALUES ('e1', '2025-01-01T09:00:00+00:00',"
                        " 'USTAFF', 'raised')"))
        db.execute(text("INSERT INTO slack_school_choices VALUES ('U1', 'mill-lane', 1.5)"))
        db.execute(text("INSERT INTO slack_handled_events VALUES ('T1:C1:1.0', 'old:1:x', 'done', 1.0, 2.0)"))
        db.execute(text("INSERT INTO slack_feedback VALUES ('q1', 'U1', 'mill-lane', 'not_helpful', 3.0)"))
    engine.dispose()

    database = Database(database_url)
    try:
        assert database.migrations_applied == ("0001", HEAD)
        store, state = EscalationStore(database), ConversationState(database)
        old = store.get("e1")
        assert (old.text, old.platform, old.categories, old.lease_owner) == (WORDS, "slack", ("neglect",), None)
        assert [(e.actor, e.action) for e in store.audit("e1")] == [("USTAFF", "raised")]
        assert state.chosen_school("U1") == "mill-lane"
        assert state.event_status("T1:C1:1.0") == "done"
        assert state.votes() == [("q1", "U1", "mill-lane", "not_helpful")]
        assert not {"slack_school_choices", "slack_handled_events", "slack_feedback"} & set(inspect(database.engine).get_table_names())
    finally:
        database.close()


def test_sqlite_runs_in_wal_mode_with_synchronous_full_and_a_busy_timeout(tmp_path):
    path = tmp_path / "policybot.sqlite3"
    database = Database.sqlite(path)
    with database.reading() as db:
        assert db.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert db.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    EscalationStore(database).record(request())
    other = sqlite3.connect(path)  # committed the moment record() returned: visible to another connection
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT count(*) FROM escalations").fetchone()[0] == 1
    other.close()
    database.close()


def test_a_sqlite_database_that_cannot_use_wal_is_a_clear_error():
    with pytest.raises(DatabaseError, match="Could not put sqlite:///:memory: in WAL mode .*local disk"):
        Database("sqlite:///:memory:")  # an in-memory database reports journal_mode 'memory'


def test_postgresql_is_reached_through_psycopg_3_in_read_committed(postgres_url):
    database = Database(postgres_url)
    try:
        assert database.engine.dialect.driver == "psycopg"
        with database.transaction() as db:
            assert db.execute(text("SHOW transaction_isolation")).scalar_one() == "read committed"
    finally:
        database.close()


def test_an_unreachable_postgresql_is_a_clear_error_without_its_password():
    pytest.importorskip("psycopg")
    with pytest.raises(DatabaseError, match=r"Could not open the database postgresql\+psycopg://policybot:\*\*\*@127.0.0.1:1/") as caught:
        Database("postgresql://policybot:s3cret@127.0.0.1:1/policybot?connect_timeout=5")  # nothing listens on port 1
    assert "s3cret" not in str(caught.value) and "database_url" in str(caught.value)


def test_an_unknown_database_url_is_refused():
    with pytest.raises(DatabaseError, match="neither sqlite:/// nor postgresql://"):
        Database("mysql://localhost/policybot")


# -- escalations --------------------------------------------------------------------------------------

def test_a_retried_event_never_creates_a_second_record(database):
    store = EscalationStore(database)
    first, created = store.record(request())
    again, created_again = store.record(request(text="a different text for the same event"))
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.text == WORDS
    assert len(store.list()) == 1


def test_one_record_per_event_when_two_replicas_record_it_at_once(replicas):
    stores = [EscalationStore(replicas[n % 2]) for n in range(THREADS)]
    results = at_once(*[lambda s=s: s.record(request()) for s in stores])
    assert sum(created for _, created in results) == 1
    assert len({record.id for record, _ in results}) == 1
    assert len(stores[0].list()) == 1 and len(stores[1].list()) == 1
    assert [e.action for e in stores[1].audit(results[0][0].id)] == ["raised"]


def test_the_words_are_kept_exactly_as_written(replicas):
    reply_to = {"channel": "D123", "thread_ts": "1700000000.000100", "name": "Zoë <& \n>"}
    record, _ = EscalationStore(replicas[0]).record(request(reply_to=reply_to, target={"serviceUrl": "https://smba.example/uk/"}))
    reopened = EscalationStore(replicas[1]).get(record.id)
    assert reopened.text == WORDS
    assert reopened.categories == ("physical-abuse", "domestic-abuse") and reopened.reasons == ("terms: hits", "terms: stepdad")
    assert reopened.reply_to == reply_to and reopened.target == {"serviceUrl": "https://smba.example/uk/"}
    assert reopened.about_head is False and reopened == record


def test_audit_trail_records_who_did_what_and_when(database):
    store = EscalationStore(database)
    record, _ = store.record(request())
    assert store.claim(record.id, "CDSL")
    store.mark_delivered(record.id, "CDSL", "1700000001.000200")
    acked = store.acknowledge(record.id, "UDSL")
    store.acknowledge(record.id, "UDEPUTY")  # a second click: audited, first acknowledgement kept
    closed = store.close_escalation(record.id[:8], "UDEPUTY")
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "UDSL")
    assert (closed.status, closed.closed_by, closed.acknowledged_by) == ("closed", "UDEPUTY", "UDSL")
    assert closed.closed_at and closed.acknowledged_at and closed.delivered_ts == "1700000001.000200"
    trail = [(e.actor, e.action) for e in store.audit(record.id)]
    assert trail == [("USTAFF", "raised"), ("policybot", "sending"), ("policybot", "delivered"),
                     ("UDSL", "acknowledged"), ("UDEPUTY", "acknowledged"), ("UDEPUTY", "closed")]
    assert all(e.at for e in store.audit(record.id))
    assert store.counts() == {"closed": 1}


def test_open_records_include_pending_sending_and_failed(database):
    store = EscalationStore(database)
    a, _ = store.record(request("a"))
    b, _ = store.record(request("b"))
    c, _ = store.record(request("c"))
    d, _ = store.record(request("d"))
    store.claim(b.id, "C1")
    store.claim(c.id, "C1")
    store.mark_failed(c.id, "channel_not_found", permanent=True)
    store.claim(d.id, "C1")
    store.mark_delivered(d.id, "C1", "1.2")
    assert {r.id: r.status for r in store.open_records()} == {a.id: "pending", b.id: "sending", c.id: "failed_permanent"}
    assert store.get(c.id).last_error == "channel_not_found"
    assert not store.claim(d.id, "C1")  # delivered: never claimed (so never posted) again


def test_a_live_lease_is_kept_from_another_replica_until_it_runs_out(replicas):
    clock = {"now": dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)}
    first = EscalationStore(replicas[0], now=lambda: clock["now"], owner="replica-a:1:aaaaaaaa")
    second = EscalationStore(replicas[1], now=lambda: clock["now"], owner="replica-b:1:bbbbbbbb")
    record, _ = first.record(request())
    assert first.claim(record.id, "CDSL")
    assert not second.claim(record.id, "CDSL")
    clock["now"] += dt.timedelta(seconds=LEASE_SECONDS - 1)
    assert not second.claim(record.id, "CDSL")
    clock["now"] += dt.timedelta(seconds=2)
    assert second.claim(record.id, "CDSL")
    taken = second.get(record.id)
    assert (taken.status, taken.lease_owner, taken.attempts) == ("sending", "replica-b:1:bbbbbbbb", 2)
    assert not first.claim(record.id, "CDSL")
    second.release(record.id)
    assert first.claim(record.id, "CDSL")  # a released lease is free at once


def test_a_lease_held_by_a_process_gone_from_this_host_is_free_at_once(replicas):
    store = EscalationStore(replicas[0])
    held, _ = store.record(request("held"))
    assert EscalationStore(replicas[0], owner=f"{socket.gethostname()}:1:11111111").claim(held.id, "CDSL")  # pid 1 runs
    assert not EscalationStore(replicas[1]).claim(held.id, "CDSL")  # a live process's lease holds

    orphan, _ = store.record(request("orphan"))
    assert EscalationStore(replicas[0], owner=gone_owner()).claim(orphan.id, "CDSL")
    live = EscalationStore(replicas[1])
    assert live.claim(orphan.id, "CDSL")  # its holder was killed: no waiting for the lease to run out
    assert live.get(orphan.id).lease_owner == live.owner
    assert not EscalationStore(replicas[0]).claim(orphan.id, "CDSL")  # and the new lease holds


def test_only_one_replica_claims_an_alert_at_once(replicas):
    record, _ = EscalationStore(replicas[0]).record(request())
    stores = [EscalationStore(replicas[n % 2]) for n in range(THREADS)]
    assert sum(at_once(*[lambda s=s: s.claim(record.id, "CDSL") for s in stores])) == 1
    assert [e.action for e in stores[0].audit(record.id)] == ["raised", "sending"]
    assert sum(at_once(*[lambda s=s: s.claim_resend(record.id) for s in stores])) == 1


def test_mark_delivered_changes_only_a_record_still_open(database):
    store = EscalationStore(database)
    closed, _ = store.record(request("closed"))
    store.close_escalation(closed.id, "UDSL")
    store.mark_delivered(closed.id, "CDSL", "9.9")
    assert (store.get(closed.id).status, store.get(closed.id).delivered_ts) == ("closed", None)

    delivered, _ = store.record(request("delivered"))
    assert store.claim(delivered.id, "CDSL")
    store.mark_delivered(delivered.id, "CDSL", "1.1")
    store.mark_delivered(delivered.id, "CFALLBACK", "2.2")
    store.mark_failed(delivered.id, "late error", permanent=True)
    again = store.get(delivered.id)
    assert (again.status, again.delivered_channel, again.delivered_ts, again.lease_owner) == ("delivered", "CDSL", "1.1", None)

    failed, _ = store.record(request("failed"))
    store.claim(failed.id, "CDSL")
    store.mark_failed(failed.id, "channel_not_found", permanent=True)
    store.mark_delivered(failed.id, "CDSL", "3.3")  # failed_permanent is still open: a later delivery counts
    assert store.get(failed.id).status == "delivered"


def test_a_member_of_staff_not_yet_told_is_found_until_told(database):
    clock = {"now": dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)}
    store = EscalationStore(database, now=lambda: clock["now"])
    told, _ = store.record(request("told", reply_to={"channel": "D1"}))
    untold, _ = store.record(request("untold", reply_to={"channel": "D2"}))
    store.record(request("nowhere"))  # no reply_to: nobody to tell
    assert store.unnotified(dt.timedelta(minutes=1)) == []
    clock["now"] += dt.timedelta(minutes=2)
    store.mark_notified(told.id)
    assert [r.id for r in store.unnotified(dt.timedelta(minutes=1))] == [untold.id]


def test_purge_removes_only_closed_records_past_retention(database):
    clock = {"now": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)}
    store = EscalationStore(database, now=lambda: clock["now"])
    old_closed, _ = store.record(request("old-closed"))
    old_open, _ = store.record(request("old-open"))
    store.close_escalation(old_closed.id, "UDSL")
    clock["now"] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    new_closed, _ = store.record(request("new-closed"))
    store.close_escalation(new_closed.id, "UDSL")
    assert store.purge(retention_days=365) == 1
    assert {r.id for r in store.list()} == {old_open.id, new_closed.id}
    assert store.audit(old_closed.id) == [] and store.audit(old_open.id)
    with pytest.raises(EscalationNotFound, match="escalations list"):
        store.get(old_closed.id)
    with pytest.raises(PolicyBotError, match="retention_days to 0 or more"):
        store.purge(retention_days=-1)


# -- conversation state -----------------------------------------------------------------------------

def test_an_event_is_claimed_once_across_two_replicas(replicas):
    states = [ConversationState(replicas[n % 2]) for n in range(THREADS)]
    assert sum(at_once(*[lambda s=s: s.claim("slack:T1:C1:1.0") for s in states])) == 1
    assert states[1].event_status("slack:T1:C1:1.0") == "pending"
    assert not any(state.claim("slack:T1:C1:1.0") for state in states)  # the winner is still answering it
    for state in states:
        state.finish("slack:T1:C1:1.0")
    assert states[0].event_status("slack:T1:C1:1.0") == "done"
    assert not any(state.claim("slack:T1:C1:1.0", take_over_after=0) for state in states)  # done: never answered again


def test_a_stale_pending_claim_is_taken_over(replicas):
    first, second = ConversationState(replicas[0]), ConversationState(replicas[1])
    assert first.claim("k")
    assert not second.claim("k")  # the other replica is still answering
    time.sleep(0.02)
    assert second.claim("k", take_over_after=0.01)  # ...but silent too long
    assert not first.claim("k")  # and now the second holds it

    assert ConversationState(replicas[0], owner=gone_owner()).claim("killed")
    assert second.claim("killed")  # its process is gone from this host: taken over at once

    second.release("k")
    assert first.claim("k")  # a released claim: the platform's retry is answered
    first.finish("k")
    assert first.forget_events_before(-1) == 1 and first.event_status("k") is None


def test_school_choices_are_upserted(replicas):
    first, second = ConversationState(replicas[0]), ConversationState(replicas[1])
    assert first.chosen_school("U1") is None
    first.choose_school("U1", "mill-lane")
    second.choose_school("U1", "oak-park")
    first.choose_school("U2", "mill-lane")
    assert (first.chosen_school("U1"), second.chosen_school("U2")) == ("oak-park", "mill-lane")
    at_once(*[lambda n=n: (first, second)[n % 2].choose_school("U3", f"school-{n}") for n in range(THREADS)])
    assert second.chosen_school("U3") in {f"school-{n}" for n in range(THREADS)}
    with replicas[0].reading() as db:
        assert db.execute(select(school_choices.c.user_id)).scalars().all().count("U3") == 1


def test_a_choice_made_while_another_replica_writes_the_first_is_not_lost(replicas):
    """Replica A is writing U1's first choice; replica B's later choice, waiting for it, must win, not vanish."""
    a, b = replicas
    with a.transaction() as db:
        db.execute(insert(school_choices).values(user_id="U1", school="mill-lane", chosen_at=1.0))
        worker = threading.Thread(target=ConversationState(b).choose_school, args=("U1", "oak-park"))
        worker.start()
        wait_until_blocked(a)
    worker.join(30)
    assert ConversationState(a).chosen_school("U1") == "oak-park"


def test_a_vote_changed_while_another_replica_writes_the_first_is_not_lost(replicas):
    from bot.storage.schema import feedback

    a, b = replicas
    with a.transaction() as db:
        db.execute(insert(feedback).values(question_id="q1", user_id="U1", vote="helpful", voted_at=1.0))
        worker = threading.Thread(target=ConversationState(b).record_vote, args=("q1", "U1", "not_helpful"))
        worker.start()
        wait_until_blocked(a)
    worker.join(30)
    assert [vote for *_, vote in ConversationState(a).votes()] == ["not_helpful"]


def test_votes_are_upserted_and_counted_by_section(replicas):
    first, second = ConversationState(replicas[0]), ConversationState(replicas[1])
    first.record_vote("q1", "U1", "not_helpful", "mill-lane", "behaviour", "4.2 Detentions")
    second.record_vote("q1", "U1", "helpful", "mill-lane", "behaviour", "4.2 Detentions")  # changed their mind
    second.record_vote("q1", "U2", "not_helpful", "mill-lane", "behaviour", "4.2 Detentions")
    first.record_vote("q2", "U1", "not_helpful", "mill-lane", "behaviour", "4.2 Detentions")
    first.record_vote("q3", "U1", "not_helpful", "mill-lane", "attendance", "2 Lateness")
    second.record_vote("q4", "U1", "not_helpful", "oak-park", "behaviour", "1 Aims")
    by_section = first.not_helpful_by_section()
    assert by_section[0] == ("mill-lane", "behaviour", "4.2 Detentions", 2)  # most first; the ties in any order
    assert sorted(by_section[1:]) == [("mill-lane", "attendance", "2 Lateness", 1), ("oak-park", "behaviour", "1 Aims", 1)]
    assert second.not_helpful_by_section("oak-park") == [("oak-park", "behaviour", "1 Aims", 1)]
    assert second.counts()["helpful"] == 1 and second.counts()["not_helpful"] == 4
    with pytest.raises(ValueError, match="helpful or not_helpful"):
        first.record_vote("q1", "U1", "meh")


def test_declines_are_counted_per_week_school_and_area_under_concurrency(replicas):
    first, second = ConversationState(replicas[0]), ConversationState(replicas[1])
    monday, sunday, next_monday = dt.date(2026, 11, 30), dt.date(2026, 12, 6), dt.date(2026, 12, 7)

    def count(state, times):
        for _ in range(times):
            state.count_decline("mill-lane", "trips", monday)

    at_once(*[lambda n=n: count((first, second)[n % 2], 5) for n in range(THREADS)])
    first.count_decline("mill-lane", "trips", sunday)
    second.count_decline("mill-lane", "", next_monday)
    second.count_decline("oak-park", "trips", monday)
    assert first.declines() == [("2026-W50", "mill-lane", "", 1), ("2026-W49", "mill-lane", "trips", THREADS * 5 + 1),
                                ("2026-W49", "oak-park", "trips", 1)]
    assert second.declines("oak-park") == [("2026-W49", "oak-park", "trips", 1)]
