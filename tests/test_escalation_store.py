"""The durable escalation store: WAL, one record per dedupe key, the audit trail, retention."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest

from bot.escalation_store import EscalationNotFound, EscalationRequest, EscalationStore

WORDS = "  A Year 9 told me her stepdad <hits> her & she's scared 😟\n— don't tell anyone, she said  "


def request(key: str = "T1:Ev1", **changes) -> EscalationRequest:
    base = dict(dedupe_key=key, school="mill-lane", route="dsl", categories=("physical-abuse", "domestic-abuse"),
                reasons=("terms: hits", "terms: stepdad"), about_head=False, raised_by="USTAFF", channel="D123",
                message_ts="1700000000.000100", permalink="https://test.slack.com/archives/D123/p1700000000000100", text=WORDS)
    base.update(changes)
    return EscalationRequest(**base)


def test_database_is_in_wal_mode(tmp_path):
    path = tmp_path / "policybot.sqlite3"
    store = EscalationStore(path)
    store.record(request())
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT count(*) FROM escalations").fetchone()[0] == 1  # committed, visible to another connection


def test_a_retried_event_never_creates_a_second_record(tmp_path):
    store = EscalationStore(tmp_path / "db.sqlite3")
    first, created = store.record(request())
    again, created_again = store.record(request(text="a different text for the same event"))
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.text == WORDS
    assert len(store.list()) == 1


def test_concurrent_records_of_one_event_make_one_row(tmp_path):
    path = tmp_path / "db.sqlite3"
    stores = [EscalationStore(path) for _ in range(4)]
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.record(request()))) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(created for _, created in results) == 1
    assert len({record.id for record, _ in results}) == 1


def test_the_words_are_kept_exactly_as_written(tmp_path):
    path = tmp_path / "db.sqlite3"
    record, _ = EscalationStore(path).record(request())
    reopened = EscalationStore(path).get(record.id)
    assert reopened.text == WORDS
    assert reopened.categories == ("physical-abuse", "domestic-abuse") and reopened.reasons == ("terms: hits", "terms: stepdad")


def test_audit_trail_records_who_did_what_and_when(tmp_path):
    store = EscalationStore(tmp_path / "db.sqlite3")
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


def test_open_records_include_pending_sending_and_failed(tmp_path):
    store = EscalationStore(tmp_path / "db.sqlite3")
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


def test_purge_removes_only_closed_records_past_retention(tmp_path):
    clock = {"now": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)}
    store = EscalationStore(tmp_path / "db.sqlite3", now=lambda: clock["now"])
    old_closed, _ = store.record(request("old-closed"))
    old_open, _ = store.record(request("old-open"))
    store.close_escalation(old_closed.id, "UDSL")
    clock["now"] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    new_closed, _ = store.record(request("new-closed"))
    store.close_escalation(new_closed.id, "UDSL")
    assert store.purge(retention_days=365) == 1
    assert {r.id for r in store.list()} == {old_open.id, new_closed.id}
    assert store.audit(old_closed.id) == []
    with pytest.raises(EscalationNotFound, match="escalations list"):
        store.get(old_closed.id)
