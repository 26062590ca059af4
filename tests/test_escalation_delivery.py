"""Delivery to a real local stand-in for Slack's Web API: exactly once, through faults, crashes and bad config."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slack_bolt import App
from slack_sdk import WebClient

from bot.escalation.delivery import Backoff, Deliverer
from bot.escalation.store import EscalationRequest, EscalationStore
from bot.settings import EscalationSettings, SchoolRoutes, Settings
from bot.slack.alerts import SlackAlertChannel
from bot.slack.blocks import ACK_ACTION, CLOSE_ACTION
from bot.slack.listeners import register_alert_buttons
from tests.conftest import ROOT
from tests.slack_api_server import slack_api  # noqa: F401  (fixture)

FAST = Backoff(initial=0.01, maximum=0.05, retry_after_cap=2.0, sweep_seconds=0.1, permanent_retry_seconds=0.0)
WORDS = "A Year 9 told me her stepdad hits her <b>&</b> she doesn't want to go home 😟"


def settings(**school) -> Settings:
    routes = dict(dsl_channel="CDSL", head_channel="CHEAD", chair_channel="CCHAIR", fallback_channel="CFALLBACK")
    routes.update(school)
    return Settings(schools={"mill-lane": SchoolRoutes(**routes)},
                    escalation=EscalationSettings(ack_timeout_minutes=15, max_attempts_per_run=8))


def request(key: str = "T1:D1:1700000000.000100", **changes) -> EscalationRequest:
    base = dict(dedupe_key=key, school="mill-lane", route="dsl", categories=("physical-abuse",),
                reasons=("matched example: 'a pupil told me her stepdad beats her' (0.70); terms: hits",), about_head=False,
                raised_by="USTAFF", channel="D1", message_ts="1700000000.000100",
                permalink="https://test.slack.com/archives/D1/p1700000000000100", text=WORDS)
    base.update(changes)
    return EscalationRequest(**base)


@pytest.fixture
def client(slack_api):
    """Slack's alert channel (it makes its own client without retry handlers)."""
    return SlackAlertChannel(WebClient(token="xoxb-test", base_url=slack_api.base_url))


def posts(slack_api, channel: str | None = None):
    return [c for c in slack_api.calls("chat.postMessage", ok_only=True)
            if c.body.get("channel") == channel or channel is None]


def alert_words(call) -> str:
    return "".join(b["text"]["text"] for b in call.blocks if b["type"] == "section" and b.get("text", {}).get("type") == "plain_text")


def test_alert_has_who_when_where_route_reasons_and_the_words_verbatim(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    delivered = Deliverer(store, client, settings(), FAST).deliver(record.id)
    [post] = posts(slack_api)
    assert post.body["channel"] == "CDSL"
    assert alert_words(post) == WORDS  # exactly as written, in plain_text: nothing escaped, nothing added
    rendered = json.dumps(post.blocks)
    assert "<@USTAFF>" in rendered and "https://test.slack.com/archives/D1/p1700000000000100" in rendered
    assert "physical-abuse" in rendered and "terms: hits" in rendered and "<!date^" in rendered
    metadata = post.body["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert metadata["event_payload"]["escalation_id"] == record.id
    assert WORDS not in post.text  # the notification preview does not carry the concern
    assert (delivered.status, delivered.delivered_channel) == ("delivered", "CDSL")
    assert delivered.delivered_ts == slack_api.history["CDSL"][0]["ts"]


def test_server_errors_then_recovery_post_exactly_one_alert(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.fail_next("chat.postMessage", 3)
    delivered = Deliverer(store, client, settings(), FAST).deliver(record.id)
    assert delivered.status == "delivered"
    assert len(slack_api.calls("chat.postMessage")) == 4 and len(posts(slack_api)) == 1
    assert slack_api.calls("conversations.history")  # after an ambiguous 5xx it looked before posting again


def test_rate_limit_honours_retry_after_then_posts_once(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.ratelimit_next("chat.postMessage", 2, retry_after=1)
    assert Deliverer(store, client, settings(), FAST).deliver(record.id).status == "delivered"
    calls = slack_api.calls("chat.postMessage")
    assert [c.http_status for c in calls] == [429, 429, 200]
    assert calls[1].at - calls[0].at >= 0.9 and calls[2].at - calls[1].at >= 0.9
    assert len(posts(slack_api)) == 1


def test_still_failing_stays_pending_and_the_worker_delivers_it_later(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.fail_next("chat.postMessage", 12)  # more than one run's attempts
    deliverer = Deliverer(store, client, settings(), FAST)
    first = deliverer.deliver(record.id)
    assert first.status in ("pending", "sending") and first.last_error
    deliverer.start()
    try:
        slack_api.wait_for("chat.postMessage", where=lambda c: c.http_status == 200)
        slack_api.wait_quiet()
    finally:
        deliverer.stop()
    assert store.get(record.id).status == "delivered" and len(posts(slack_api)) == 1


CRASHING_PROCESS = """
import os, sys
sys.path.insert(0, {root!r})
from bot.escalation.store import EscalationRequest, EscalationStore
store = EscalationStore({db!r})
record, created = store.record(EscalationRequest("T1:D1:1700000000.000100", "mill-lane", "dsl", ("self-harm-suicide",),
    ("terms: cuts on",), False, "USTAFF", "D1", "1700000000.000100", None, {words!r}))
print(record.id, flush=True)
os._exit(9)  # killed before the deliverer ever runs
"""


def test_killed_after_storing_before_delivery_is_delivered_once_after_restart(tmp_path, slack_api, client):
    db = tmp_path / "policybot.sqlite3"
    script = CRASHING_PROCESS.format(root=str(ROOT), db=str(db), words=WORDS)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    escalation_id = done.stdout.strip()
    assert slack_api.calls() == []
    store = EscalationStore(db)
    deliverer = Deliverer(store, client, settings(), FAST)
    deliverer.start()  # the restart: delivers what is stored
    try:
        slack_api.wait_for("chat.postMessage")
        deliverer.deliver_soon(escalation_id)  # a late duplicate nudge changes nothing
        slack_api.wait_quiet()
    finally:
        deliverer.stop()
    [post] = posts(slack_api)
    assert alert_words(post) == WORDS
    assert store.get(escalation_id).status == "delivered"
    again = Deliverer(EscalationStore(db), client, settings(), FAST)  # and a second restart posts nothing
    again.start()
    time.sleep(0.3)
    again.stop()
    assert len(posts(slack_api)) == 1


def test_killed_after_posting_before_recording_it_is_not_posted_twice(tmp_path, slack_api, client):
    """A crash between chat.postMessage and the store update: the restart finds the alert in the channel."""
    db = tmp_path / "policybot.sqlite3"
    store = EscalationStore(db)
    record, _ = store.record(request())
    assert store.claim(record.id, "CDSL")  # what the crashed process had done ...
    from bot.escalation.alert import build_alert

    client.post(store.get(record.id), "CDSL", build_alert(store.get(record.id)))  # ... and Slack had accepted this post
    deliverer = Deliverer(EscalationStore(db), client, settings(), FAST)
    deliverer.start()
    try:
        slack_api.wait_for("conversations.history")
        slack_api.wait_quiet()
    finally:
        deliverer.stop()
    assert len(posts(slack_api)) == 1
    assert store.get(record.id).status == "delivered"


def test_missing_dsl_channel_stays_pending_and_health_says_why(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.error_for_channel("CDSL", "channel_not_found")
    deliverer = Deliverer(store, client, settings(), FAST)
    failed = deliverer.deliver(record.id)
    assert (failed.status, failed.last_error) == ("failed_permanent", "channel_not_found")
    assert len(slack_api.calls("chat.postMessage")) == 1  # a permanent error is not hammered
    health = deliverer.health()
    assert health.pending == 1 and [f.error for f in health.failures] == ["channel_not_found"]
    assert [f.id for f in health.failures] == [record.id]
    slack_api.clear_faults()  # the DSL creates the channel; the next sweep delivers it
    deliverer.sweep(include_permanent=True)
    assert store.get(record.id).status == "delivered" and deliverer.health().pending == 0


def test_unconfigured_channel_stays_pending_with_what_to_configure(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request(school="unknown-school"))
    deliverer = Deliverer(store, client, settings(), FAST)
    assert deliverer.deliver(record.id).status == "failed_permanent"
    assert "dsl_channel" in deliverer.health().failures[0].error
    assert slack_api.calls("chat.postMessage") == []


def test_allegation_about_the_head_goes_to_the_chair_not_the_head(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    about_head, _ = store.record(request("k1", route="staff-allegation", categories=("staff-allegation",),
                                         reasons=("adult and conduct terms: the head, grab",), about_head=True))
    about_coach, _ = store.record(request("k2", route="staff-allegation", categories=("staff-allegation",),
                                          reasons=("adult and conduct terms: coach, lifts home",)))
    deliverer = Deliverer(store, client, settings(), FAST)
    deliverer.deliver(about_head.id)
    deliverer.deliver(about_coach.id)
    assert [p.body["channel"] for p in posts(slack_api)] == ["CCHAIR", "CHEAD"]
    # no chair channel: the DSL's channel, marked so; never the head's own channel
    no_chair = EscalationStore(tmp_path / "other.sqlite3")
    record, _ = no_chair.record(request("k3", route="staff-allegation", about_head=True))
    sent = Deliverer(no_chair, client, settings(chair_channel=None), FAST).deliver(record.id)
    assert (sent.status, sent.delivered_channel) == ("delivered", "CDSL")
    fallback = posts(slack_api, "CDSL")[0]
    assert "No chair of governors channel is set up" in json.dumps(fallback.blocks)
    assert len(posts(slack_api, "CHEAD")) == 1  # still only the coach's


def test_a_missing_head_channel_falls_back_to_the_dsl_marked_as_such(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request(route="staff-allegation", categories=("staff-conduct",)))
    sent = Deliverer(store, client, settings(head_channel=None), FAST).deliver(record.id)
    assert (sent.status, sent.delivered_channel) == ("delivered", "CDSL")
    assert "No headteacher channel is set up" in json.dumps(posts(slack_api, "CDSL")[0].blocks)


def test_a_post_that_landed_before_a_500_is_not_posted_again(tmp_path, slack_api, client):
    """Slack posts the alert and then answers 500: the next attempt looks in the channel and finds it."""
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.accept_then_fail_next("chat.postMessage", 1)
    delivered = Deliverer(store, client, settings(), FAST).deliver(record.id)
    assert delivered.status == "delivered"
    assert len(slack_api.history["CDSL"]) == 1  # one alert in the channel
    assert len(slack_api.calls("chat.postMessage")) == 1 and slack_api.calls("conversations.history")
    assert delivered.delivered_ts == slack_api.history["CDSL"][0]["ts"]


def test_retried_event_and_repeated_nudges_post_one_alert(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    deliverer = Deliverer(store, client, settings(), FAST)
    deliverer.start()
    try:
        for _ in range(3):  # Slack retries the event; the adapter records and nudges each time
            record, _ = store.record(request())
            deliverer.deliver_soon(record.id)
        slack_api.wait_for("chat.postMessage")
        slack_api.wait_quiet()
    finally:
        deliverer.stop()
    assert len(posts(slack_api, "CDSL")) == 1


def test_unacknowledged_alert_is_resent_to_the_fallback_once(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    config = settings().model_copy(update={"escalation": EscalationSettings(ack_timeout_minutes=0)})
    deliverer = Deliverer(store, client, config, FAST)
    late, _ = store.record(request("late"))
    seen, _ = store.record(request("seen"))
    deliverer.deliver(late.id)
    deliverer.deliver(seen.id)
    store.acknowledge(seen.id, "UDSL")
    assert deliverer.resend_unacknowledged() == 1
    assert deliverer.resend_unacknowledged() == 0
    [resent] = posts(slack_api, "CFALLBACK")
    assert late.id in json.dumps(resent.blocks) and "NOT ACKNOWLEDGED" in resent.text
    assert store.get(late.id).resent_to_fallback_at


def test_acknowledge_and_close_buttons_record_who_and_update_the_alert(tmp_path, slack_api, client):
    from slack_bolt.request import BoltRequest
    from slack_sdk.signature import SignatureVerifier
    from urllib.parse import urlencode

    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    delivered = Deliverer(store, client, settings(), FAST).deliver(record.id)
    app = App(client=client.client, signing_secret="secret", token_verification_enabled=False, process_before_response=True)
    register_alert_buttons(app, store)

    def click(action_id: str, user: str, channel: str = "CDSL"):
        payload = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": user}, "api_app_id": "A1",
                   "channel": {"id": channel}, "container": {"type": "message", "channel_id": channel, "message_ts": delivered.delivered_ts},
                   "message": {"ts": delivered.delivered_ts}, "trigger_id": "1.2",
                   "actions": [{"type": "button", "action_id": action_id, "value": record.id, "block_id": f"escalation:{record.id}"}]}
        body = urlencode({"payload": json.dumps(payload)})
        ts = str(int(time.time()))
        headers = {"content-type": ["application/x-www-form-urlencoded"], "x-slack-request-timestamp": [ts],
                   "x-slack-signature": [SignatureVerifier("secret").generate_signature(timestamp=ts, body=body)]}
        assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200

    click(ACK_ACTION, "UOUTSIDER", channel="CGENERAL")  # a copy of the card posted elsewhere: refused, audited
    click(CLOSE_ACTION, "UOUTSIDER", channel="CGENERAL")
    assert store.get(record.id).status == "delivered" and not slack_api.calls("chat.update")
    assert [e.action for e in store.audit(record.id)][-2:] == ["acknowledge_refused", "close_refused"]

    click(ACK_ACTION, "UDSL")
    click(CLOSE_ACTION, "UDEPUTY")
    final = store.get(record.id)
    assert (final.acknowledged_by, final.closed_by, final.status) == ("UDSL", "UDEPUTY", "closed")
    updates = slack_api.calls("chat.update")
    assert len(updates) == 2 and all(u.body["ts"] == delivered.delivered_ts for u in updates)
    assert "acknowledged by <@UDSL>" in json.dumps(updates[0].blocks)
    assert not any(b["type"] == "actions" for b in updates[1].blocks)  # closed: no more buttons
    assert [e.action for e in store.audit(record.id)][-2:] == ["acknowledged", "closed"]


def test_no_message_text_in_logs(tmp_path, slack_api, client, caplog):
    caplog.set_level("DEBUG")
    store = EscalationStore(tmp_path / "db.sqlite3")
    record, _ = store.record(request())
    slack_api.fail_next("chat.postMessage", 1)
    Deliverer(store, client, settings(), FAST).deliver(record.id)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))
    assert record.id in logged
    assert "stepdad" not in logged and "Year 9" not in logged


def test_never_posted_where_the_head_it_is_about_would_read_it(tmp_path):
    from tests.slack_api_server import SlackAPIServer

    with SlackAPIServer() as slack:
        slack.members.update({"CCHAIR": ["UCHAIR", "UHEAD"], "CGOV": ["UCHAIR"]})
        client = SlackAlertChannel(WebClient(token="xoxb-test", base_url=slack.base_url))
        store = EscalationStore(tmp_path / "db.sqlite3")
        # not assessed as about the head, but it @-mentions the school's head: still the chair's route
        record, _ = store.record(request("k1", route="staff-allegation", text="<@UHEAD> grabbed a Year 3 by the arm"))
        stuck = Deliverer(store, client, settings(head_user_ids=("UHEAD",)), FAST).deliver(record.id)
        assert stuck.status == "failed_permanent" and "includes the headteacher" in stuck.last_error
        assert slack.calls("chat.postMessage") == []
        fixed = Deliverer(store, client, settings(head_user_ids=("UHEAD",), chair_channel="CGOV"), FAST)
        fixed.sweep(include_permanent=True)
        assert [c.body["channel"] for c in slack.calls("chat.postMessage")] == ["CGOV"]


def test_a_re_alert_that_could_not_be_posted_goes_out_at_the_next_sweep_once(tmp_path, slack_api, client):
    store = EscalationStore(tmp_path / "db.sqlite3")
    config = settings().model_copy(update={"escalation": EscalationSettings(ack_timeout_minutes=0)})
    deliverer = Deliverer(store, client, config, FAST)
    late, _ = store.record(request("late"))
    deliverer.deliver(late.id)
    slack_api.fail_next("chat.postMessage", 1, status=503)
    assert deliverer.resend_unacknowledged() == 0  # Slack was down: not lost, only later
    assert not store.get(late.id).resent_to_fallback_at
    assert deliverer.resend_unacknowledged() == 1
    assert deliverer.resend_unacknowledged() == 0
    assert len(posts(slack_api, "CFALLBACK")) == 1


def test_a_re_alert_claimed_by_a_replica_that_died_is_sent_once_the_lease_runs_out(tmp_path, slack_api, client):
    from bot.escalation.store import LEASE_SECONDS

    config = settings().model_copy(update={"escalation": EscalationSettings(ack_timeout_minutes=0)})
    store = EscalationStore(tmp_path / "db.sqlite3")
    late, _ = store.record(request("late"))
    Deliverer(store, client, config, FAST).deliver(late.id)
    assert EscalationStore(tmp_path / "db.sqlite3", owner="dead-replica").claim_resend(late.id)  # then it died
    assert Deliverer(store, client, config, FAST).resend_unacknowledged() == 0  # it may still be posting
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=LEASE_SECONDS + 5)
    survivor = Deliverer(EscalationStore(tmp_path / "db.sqlite3", now=lambda: later), client, config, FAST)
    assert survivor.resend_unacknowledged() == 1
    assert survivor.resend_unacknowledged() == 0
    [resent] = posts(slack_api, "CFALLBACK")
    assert late.id in json.dumps(resent.blocks)
