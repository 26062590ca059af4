"""The conversation core with real parts: what staff are told about a concern in each mode, and what is recorded."""

from __future__ import annotations

import datetime as dt

import json
import os
import subprocess
import sys

import pytest
from slack_sdk import WebClient

from bot.cli.render import reply_text
from bot.core.conversation import Conversation, Message
from bot.core.schools import Place
from bot.core.state import ConversationState
from bot.escalation.delivery import Backoff, Deliverer
from bot.escalation.store import EscalationStore
from bot.settings import EscalationSettings, SchoolRoutes, Settings, SlackSettings
from bot.slack.alerts import SlackAlertChannel
from tests.conftest import ROOT
from tests.slack_api_server import slack_api  # noqa: F401  (fixture)

pytestmark = pytest.mark.model

FAST = Backoff(initial=0.01, maximum=0.05, retry_after_cap=2.0, sweep_seconds=0.1, permanent_retry_seconds=0.0)
CONCERN = "a year 9 girl told me her stepdad hits her when he's been drinking"


def slack_message(text: str, ts: str = "1700000000.000100", user: str = "USTAFF") -> Message:
    return Message(user=user, text=text, raw_text=text, place=Place("slack", "C1", "T1", private=False), event_key=f"T1:C1:{ts}",
                   reply_to={"platform": "slack", "kind": "mention", "channel": "C1", "user": user}, message_ref=ts)


def core(tmp_path, answerer, gate, slack_api=None, **routes) -> Conversation:
    settings = Settings(data_dir=tmp_path, school="chiltern", slack=SlackSettings(bot_token="xoxb-test"),
                        schools={"chiltern": SchoolRoutes(**routes)} if routes else {}, escalation=EscalationSettings())
    state = ConversationState(settings.database)
    if slack_api is None:
        return Conversation(settings, answerer, gate, state)
    store = EscalationStore(settings.database)
    deliverer = Deliverer(store, SlackAlertChannel(WebClient(token="xoxb-test", base_url=slack_api.base_url)), settings, FAST)
    return Conversation(settings, answerer, gate, state, store, deliverer)


def test_the_terminal_says_nobody_was_alerted_and_records_nothing(tmp_path, answerer, gate):
    conversation = core(tmp_path, answerer, gate)
    turn = conversation.receive(Message(user="local", text=CONCERN, place=Place("terminal")), school="chiltern")
    text = reply_text(conversation.reply(turn))
    assert text.startswith("Nobody has been alerted from here: tell your DSL now, in person.")
    assert "Write down straight away" in text
    assert "Social Media Policy says" not in text  # guidance is never followed by an unrelated clause
    assert EscalationStore(tmp_path / "policybot.sqlite3").list() == []


def test_a_concern_with_a_dsl_channel_says_where_and_when_it_went(tmp_path, answerer, gate, slack_api):
    slack_api.channels["CDSL"] = {"name": "dsl-team"}
    conversation = core(tmp_path, answerer, gate, slack_api, dsl_channel="CDSL")
    turn = conversation.receive(slack_message(CONCERN))
    assert turn.kind == "concern" and turn.escalation_id  # recorded in receive, before the platform's ack
    reply = conversation.reply(turn)
    assert reply.private and reply.escalated.delivery.sent_to == "#dsl-team"
    text = reply_text(reply)
    assert text.startswith(f"Sent to #dsl-team at {turn.recorded_at:%H:%M}: the DSL will contact you.")
    conversation.deliverer.deliver(turn.escalation_id)
    alert = slack_api.wait_for("chat.postMessage", where=lambda c: c.body.get("channel") == "CDSL")[0]
    assert "stepdad" in json.dumps(alert.blocks)
    conversation.done(turn)
    assert EscalationStore(tmp_path / "policybot.sqlite3").get(turn.escalation_id).notified_at


def test_a_concern_with_no_channel_anywhere_is_recorded_and_staff_are_told_nobody_was_alerted(tmp_path, answerer, gate, slack_api):
    conversation = core(tmp_path, answerer, gate, slack_api)
    turn = conversation.receive(slack_message(CONCERN))
    text = reply_text(conversation.reply(turn))
    assert text.startswith("Nobody has been alerted from here: tell your DSL now, in person.")
    assert conversation.deliverer.deliver(turn.escalation_id).status == "failed_permanent"
    assert "no channel for the DSL on any platform" in conversation.status()
    assert slack_api.calls("chat.postMessage") == []


def test_an_allegation_with_no_head_channel_goes_to_the_dsl_and_says_so(tmp_path, answerer, gate, slack_api):
    conversation = core(tmp_path, answerer, gate, slack_api, dsl_channel="CDSL")
    turn = conversation.receive(slack_message("our new coach gives one Year 8 girl lifts home on his own and has her saved "
                                              "in his phone with a heart emoji"))
    reply = conversation.reply(turn)
    assert reply.escalated.recipient == "head" and reply.escalated.delivery.fallback
    assert "it went to the DSL's channel instead" in reply_text(reply)


def test_a_retried_event_is_recorded_once(tmp_path, answerer, gate, slack_api):
    conversation = core(tmp_path, answerer, gate, slack_api, dsl_channel="CDSL")
    first = conversation.receive(slack_message(CONCERN))
    again = conversation.receive(slack_message(CONCERN))
    assert first.kind == "concern" and again.kind == "duplicate" and conversation.reply(again) is None
    assert len(EscalationStore(tmp_path / "policybot.sqlite3").list()) == 1


def test_a_direct_report_needs_no_classifier(tmp_path, answerer, gate, slack_api):
    conversation = core(tmp_path, answerer, gate, slack_api, dsl_channel="CDSL")
    turn = conversation.report(slack_message("I want to pass on something about Jayden in 8C, please call me", ts="2.1"))
    assert turn.kind == "concern" and turn.reported
    assert reply_text(conversation.reply(turn)).startswith("Sent to")


def test_a_policy_question_is_answered_from_the_schools_own_clause(tmp_path, answerer, gate):
    conversation = core(tmp_path, answerer, gate)
    turn = conversation.receive(Message(user="local", text="can I accept a follow from an ex-pupil aged 18?", place=Place("terminal")),
                                school="chiltern")
    reply = conversation.reply(turn)
    assert reply.answer.answered and "below the age of nineteen" in reply.answer.citations[0].quote


def test_no_question_text_is_stored_anywhere_in_the_data_folder(tmp_path, answerer, gate, slack_api):
    conversation = core(tmp_path, answerer, gate, slack_api, dsl_channel="CDSL")
    asked = "whats the parking situation for the staff car park on inset days zebra"
    for n in range(3):  # three staff ask what no policy answers; the gaps report counts them, by week and school
        turn = conversation.receive(slack_message(asked, ts=f"3.{n}"))
        assert conversation.reply(turn).answer.status == "not_covered"
        conversation.done(turn)
    [(week, school, _area, count)] = conversation.state.declines()
    year, number, _ = dt.date.today().isocalendar()
    assert (week, school, count) == (f"{year}-W{number:02d}", "chiltern", 3)
    assert f"{week}" in conversation.gaps() and "chiltern" in conversation.gaps()
    found = subprocess.run(["grep", "-rl", "zebra", str(tmp_path)], capture_output=True, text=True)
    assert found.stdout == "", found.stdout


def test_the_cli_chat_runs_and_a_report_is_typed(tmp_path, bundled_index, models_dir):
    """The terminal chat, as staff try it: pick a school by name, ask, report; nothing is sent from here."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(bundled_index, data / "index")
    chat = subprocess.run([sys.executable, "-m", "bot.cli", "--data", str(data), "chat"], input="Chiltern\nreport a Y9 told me her dad hits her\nquit\n",
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "POLICYBOT_MODELS": str(models_dir)})
    assert chat.returncode == 0, chat.stderr
    assert "answering from Chiltern Learning Trust's policies" in chat.stdout
    assert "Nobody has been alerted from here" in chat.stdout



def test_a_delivery_whose_decision_failed_is_handled_when_the_platform_retries_it(tmp_path, answerer, gate, slack_api):
    """The store refuses the first write (a real SQLite trigger stands in for a full disk): the event's claim is let
    go, so Slack's retry records the concern once instead of being ignored as a duplicate."""
    import sqlite3

    slack_api.channels["CDSL"] = {"name": "dsl-team"}
    settings = Settings(data_dir=tmp_path, school="chiltern", slack=SlackSettings(bot_token="xoxb-test"),
                        schools={"chiltern": SchoolRoutes(dsl_channel="CDSL")}, escalation=EscalationSettings())
    state = ConversationState(settings.database)
    store = EscalationStore(tmp_path / "escalations.sqlite3")
    deliverer = Deliverer(store, SlackAlertChannel(WebClient(token="xoxb-test", base_url=slack_api.base_url)), settings, FAST)
    conversation = Conversation(settings, answerer, gate, state, store, deliverer)
    with sqlite3.connect(tmp_path / "escalations.sqlite3") as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON escalations BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    message = slack_message(CONCERN)
    with pytest.raises(Exception, match="disk full"):
        conversation.receive(message)
    assert state.event_status(message.event_key) is None  # not held as "being handled"
    with sqlite3.connect(tmp_path / "escalations.sqlite3") as db:
        db.execute("DROP TRIGGER refuse")
    turn = conversation.receive(message)  # the platform's retry
    assert turn.kind == "concern" and turn.escalation_id
    assert conversation.receive(message).kind == "duplicate"  # and a third delivery is one
    assert [e.id for e in store.list()] == [turn.escalation_id]
