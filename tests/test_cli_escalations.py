"""`policybot escalations list|show|export|purge` for the DSL team, against a real SQLite database."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.escalation.store import Escalation, EscalationRequest, EscalationStore
from bot.settings import load_settings

WORDS = "  A Year 9 told me her stepdad <hits> her & she's \"scared\" 😟\n— don't tell anyone, she said,  "
PHRASES = ("Year 9 told me", "stepdad <hits>", "scared", "don't tell anyone")
EVERY_FIELD = [field.name for field in dataclasses.fields(Escalation)]


def request(key: str, school: str = "mill-lane", text: str = WORDS) -> EscalationRequest:
    return EscalationRequest(dedupe_key=key, school=school, route="dsl", categories=("physical-abuse", "domestic-abuse"),
                             reasons=("terms: hits", "terms: stepdad"), about_head=False, raised_by="USTAFF", channel="D123",
                             message_ts="1700000000.000100", permalink="https://test.slack.com/archives/D123/p1700000000000100",
                             text=text)


def days_ago(days: float):
    return lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    for name in ("POLICYBOT_RAISE", "POLICYBOT_CONFIG", "POLICYBOT_DATA"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


def open_store(data: Path, now=None) -> EscalationStore:
    """The database the CLI reads, opened through the real store API (optionally with a clock in the past)."""
    path = load_settings(env={}, data_dir=data).database
    return EscalationStore(path, now=now) if now else EscalationStore(path)


@pytest.fixture
def store(data) -> EscalationStore:
    return open_store(data)


def policybot(data: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--data", str(data), "escalations", *args], input=input, catch_exceptions=False)


def delivered_acknowledged_closed(store: EscalationStore, key: str, school: str = "mill-lane") -> Escalation:
    record, _ = store.record(request(key, school))
    assert store.claim(record.id, "CDSL")
    store.mark_delivered(record.id, "CDSL", "1700000001.000200")
    store.acknowledge(record.id, "UDSL")
    return store.close_escalation(record.id, "UDEPUTY")


# -- list -----------------------------------------------------------------------------------------

def test_list_shows_one_line_per_escalation_newest_first_without_the_words(data, store):
    first, _ = store.record(request("a"))
    second, _ = store.record(request("b", school="kingsmead"))
    third = delivered_acknowledged_closed(store, "c")

    result = policybot(data, "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert [line.split()[0] for line in lines] == [third.id[:12], second.id[:12], first.id[:12]]
    assert lines[0].split()[2:] == ["mill-lane", "dsl", "physical-abuse,domestic-abuse", "closed"]
    assert lines[1].split()[2] == "kingsmead" and lines[1].split()[-1] == "pending"
    for phrase in PHRASES:
        assert phrase not in result.output


def test_list_filters_by_status_and_school(data, store):
    pending_mill, _ = store.record(request("a"))
    pending_kings, _ = store.record(request("b", school="kingsmead"))
    closed_kings = delivered_acknowledged_closed(store, "c", school="kingsmead")

    def listed(*args: str) -> list[str]:
        result = policybot(data, "list", *args)
        assert result.exit_code == 0, result.output
        return [line.split()[0] for line in result.stdout.splitlines()]

    assert listed("--status", "pending") == [pending_kings.id[:12], pending_mill.id[:12]]
    assert listed("--school", "kingsmead") == [closed_kings.id[:12], pending_kings.id[:12]]
    assert listed("--school", "kingsmead", "--status", "closed") == [closed_kings.id[:12]]
    assert listed("--school", "mill-lane", "--status", "closed") == ["No"]  # "No escalations."
    assert policybot(data, "list", "--status", "lost").exit_code == 2


# -- show -----------------------------------------------------------------------------------------

def test_show_prints_the_words_exactly_and_who_acknowledged_and_closed(data, store):
    record = delivered_acknowledged_closed(store, "a")

    result = policybot(data, "show", record.id[:12])  # the short id that `list` prints

    assert result.exit_code == 0, result.output
    assert f"words (exactly as written):\n{WORDS}\naudit:\n" in result.stdout
    fields = dict(line.split(None, 1) for line in result.stdout.split("words (exactly as written):")[0].splitlines())
    assert fields["id"] == record.id and fields["school"] == "mill-lane"
    assert fields["acknowledged_by"] == "UDSL" and fields["closed_by"] == "UDEPUTY"
    assert fields["closed_at"] == record.closed_at
    trail = [line.split()[1:3] for line in result.stdout.split("audit:\n", 1)[1].splitlines()]
    assert trail == [["USTAFF", "raised"], ["policybot", "sending"], ["policybot", "delivered"],
                     ["UDSL", "acknowledged"], ["UDEPUTY", "closed"]]


@pytest.mark.parametrize("wrong", ["deadbeef00", "%%%%%%%%", "______", "SHORT"])
def test_unknown_id_is_one_clear_line_and_a_non_zero_exit(data, store, wrong):
    store.record(request("a"))  # one record: a LIKE wildcard or a too-short prefix must still not match it
    env = {k: v for k, v in os.environ.items() if k not in ("POLICYBOT_RAISE", "POLICYBOT_CONFIG", "POLICYBOT_DATA")}

    result = subprocess.run([sys.executable, "-m", "bot.cli", "--data", str(data), "escalations", "show", wrong],
                            capture_output=True, text=True, timeout=120, env={**env, "HF_HUB_OFFLINE": "1"})

    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert wrong in lines[0] and "policybot escalations list" in lines[0]


# -- export ---------------------------------------------------------------------------------------

def test_export_json_lines_hold_every_field_and_the_exact_words(data, store):
    closed = delivered_acknowledged_closed(store, "a")
    pending, _ = store.record(request("b", school="kingsmead"))

    result = policybot(data, "export")

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(row) for row in rows] == [EVERY_FIELD, EVERY_FIELD]
    assert rows == [store.get(pending.id).to_json(), store.get(closed.id).to_json()]
    assert rows[1]["text"] == WORDS and rows[1]["closed_by"] == "UDEPUTY"


def test_export_csv_to_a_file_holds_every_field_and_the_exact_words(data, store, tmp_path):
    closed = delivered_acknowledged_closed(store, "a")
    store.record(request("b", school="kingsmead"))
    target = tmp_path / "escalations.csv"

    result = policybot(data, "export", "--format", "csv", "--school", "mill-lane", "-o", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    with target.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == EVERY_FIELD
    assert len(rows) == 1
    row, expected = rows[0], store.get(closed.id)
    assert row["text"] == WORDS
    assert row["categories"] == "physical-abuse;domestic-abuse"
    assert json.loads(row["reasons"]) == ["terms: hits", "terms: stepdad"]
    for name in EVERY_FIELD:
        if name not in ("categories", "reasons", "about_head", "attempts"):
            assert row[name] == (getattr(expected, name) or ""), name
    assert (row["about_head"], row["attempts"]) == ("False", "1")


def test_export_filters_by_status(data, store):
    delivered_acknowledged_closed(store, "a")
    pending, _ = store.record(request("b"))

    result = policybot(data, "export", "--status", "pending")

    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [pending.id]


# -- purge ----------------------------------------------------------------------------------------

def test_purge_deletes_only_closed_records_past_the_configured_retention(data, store, tmp_path, monkeypatch):
    config = tmp_path / "policybot.yaml"
    config.write_text("escalation:\n  retention_days: 30\n", encoding="utf-8")
    monkeypatch.setenv("POLICYBOT_CONFIG", str(config))
    closed_31_days_ago = delivered_acknowledged_closed(open_store(data, now=days_ago(31)), "closed-31")
    closed_29_days_ago = delivered_acknowledged_closed(open_store(data, now=days_ago(29)), "closed-29")
    open_100_days_ago, _ = open_store(data, now=days_ago(100)).record(request("open-100"))
    closed_today = delivered_acknowledged_closed(store, "closed-today")

    result = policybot(data, "purge", "--yes")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Purged 1 closed escalations older than 30 days.\n"
    kept = {r.id for r in store.list()}
    assert kept == {closed_29_days_ago.id, open_100_days_ago.id, closed_today.id}
    assert store.audit(closed_31_days_ago.id) == []

    result = policybot(data, "purge", "--days", "20", "--yes")  # an explicit --days wins over the setting
    assert result.stdout == "Purged 1 closed escalations older than 20 days.\n"
    assert {r.id for r in store.list()} == {open_100_days_ago.id, closed_today.id}


def test_purge_asks_first_and_deletes_nothing_when_refused(data, store):
    old_closed = delivered_acknowledged_closed(open_store(data, now=days_ago(400)), "old")

    result = policybot(data, "purge", "--days", "30", input="n\n")

    assert result.exit_code == 1
    assert "Delete closed escalations raised more than 30 days ago?" in result.output
    assert [r.id for r in store.list()] == [old_closed.id]


def test_purge_refuses_a_negative_retention(data, store):
    closed_today = delivered_acknowledged_closed(store, "today")

    result = policybot(data, "purge", "--days", "-1", "--yes")

    assert result.exit_code == 2
    assert [r.id for r in store.list()] == [closed_today.id]


def test_a_negative_retention_in_the_config_is_one_clear_line_and_deletes_nothing(data, store, tmp_path, monkeypatch):
    config = tmp_path / "policybot.yaml"
    config.write_text("escalation:\n  retention_days: -5\n", encoding="utf-8")
    monkeypatch.setenv("POLICYBOT_CONFIG", str(config))
    closed_today = delivered_acknowledged_closed(store, "today")

    result = policybot(data, "purge", "--yes")

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: Retention of -5 days would delete today's records; set escalation.retention_days to 0 or more."]
    assert [r.id for r in store.list()] == [closed_today.id]


# -- logs -----------------------------------------------------------------------------------------

def test_nothing_of_the_words_reaches_the_logs(data, caplog):
    caplog.set_level(logging.DEBUG)
    old = delivered_acknowledged_closed(open_store(data, now=days_ago(400)), "old")
    current = delivered_acknowledged_closed(open_store(data), "current")

    shown = CliRunner().invoke(main, ["-v", "--data", str(data), "escalations", "show", current.id], catch_exceptions=False)
    for args in (["list"], ["export"], ["export", "--format", "csv"], ["purge", "--days", "30", "--yes"], ["show", "nope00"]):
        CliRunner().invoke(main, ["-v", "--data", str(data), "escalations", *args], catch_exceptions=False)

    assert WORDS in shown.stdout  # the words were handled...
    assert f"id={old.id}" in caplog.text and "purged 1 closed escalations" in caplog.text  # ...and logging was captured
    for phrase in PHRASES:
        assert phrase not in caplog.text
    assert not [r for r in caplog.records if any(phrase in str(arg) for arg in (r.args or ()) for phrase in PHRASES)]


def test_export_file_is_private_and_csv_cells_cannot_run_as_spreadsheet_formulas(data, store, tmp_path):
    formula = '=HYPERLINK("http://example.invalid","click") a Year 9 told me'
    record, _ = store.record(request("a", text=formula))
    target = tmp_path / "out.csv"
    target.write_text("old contents")
    target.chmod(0o644)

    result = policybot(data, "export", "--format", "csv", "-o", str(target))

    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o777 == 0o600
    with target.open(encoding="utf-8", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["text"] == "'" + formula
    jsonl = policybot(data, "export")  # JSON lines keep the words exactly
    assert json.loads(jsonl.stdout.splitlines()[0])["text"] == formula
    assert record.id == json.loads(jsonl.stdout.splitlines()[0])["id"]
