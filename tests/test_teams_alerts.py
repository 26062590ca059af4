"""Safeguarding alerts into a Teams channel through the real Deliverer and TeamsAlertChannel, against a local Bot
Connector stand-in: the card's facts, exactly once through 5xx, 429 and crashes, Acknowledge/Close routing facts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.escalation.alert import build_alert
from bot.escalation.delivery import Deliverer
from bot.escalation.store import EscalationRequest, EscalationStore
from bot.settings import ChannelRoutes, SchoolRoutes
from bot.storage.database import Database
from bot.teams.server import TeamsSetupError, teams_parts
from tests.teams_standins import DSL_CHANNEL, TENANT, Connector, Identity, fast_backoff, teams_settings

ROOT = Path(__file__).resolve().parent.parent
WORDS = "A Year 9 told me her stepdad hits her <b>&</b> **she** doesn't want to go home 😟"
HEAD_CHANNEL = "19:head@thread.tacv2"


@pytest.fixture
def stand_ins():
    identity, connector = Identity(), Connector()
    yield identity, connector
    identity.stop()
    connector.stop()


@pytest.fixture
def setup(tmp_path, stand_ins):
    identity, connector = stand_ins
    settings = teams_settings(tmp_path, identity, connector)
    parts = teams_parts(settings)
    store = EscalationStore(Database(settings.database))
    return settings, parts, store, connector


def request(connector: Connector, key: str = "teams:a:personal-29:staff:1700000000001", **changes) -> EscalationRequest:
    base = dict(dedupe_key=key, school="chiltern", route="dsl", categories=("physical-abuse",),
                reasons=("assessed by the gate: concern probability 0.91",), about_head=False, raised_by="teams:aad-staff",
                channel="a:personal-29:staff", message_ts="1700000000001", permalink=None, text=WORDS, platform="teams",
                reply_to={"platform": "teams", "serviceUrl": connector.service_url, "conversation": "a:personal-29:staff",
                          "user": "29:staff", "aadObjectId": "aad-staff", "tenant": TENANT, "personal": True, "name": "Sam Staff"})
    base.update(changes)
    return EscalationRequest(**base)


def texts(element) -> str:
    if isinstance(element, dict):
        own = [element["text"]] if element.get("type") in ("TextRun", "TextBlock") else []
        return "".join(own + [texts(v) for v in element.values() if isinstance(v, (dict, list))])
    if isinstance(element, list):
        return "".join(texts(e) for e in element)
    return ""


def thread_posts(connector: Connector):
    return connector.thread_posts()


def test_alert_posted_into_the_channel_with_who_when_where_category_and_the_words_verbatim(setup):
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    delivered = Deliverer(store, parts.alerts, settings, fast_backoff()).deliver(record.id)
    [post] = thread_posts(connector)
    assert post.path == "/teams/emea/v3/conversations"  # the serviceUrl of the activity that raised it
    assert post.body["channelData"] == {"channel": {"id": DSL_CHANNEL}, "tenant": {"id": TENANT}} and post.body["isGroup"] is True
    assert post.headers["authorization"].startswith("Bearer bot-token-")
    content = post.body["activity"]["attachments"][0]["content"]
    words = [b for b in content["body"] if b.get("type") == "Container"][-1]["items"][0]["inlines"][0]["text"]
    assert words == WORDS  # verbatim, in a TextRun: never markdown
    shown = texts(content)
    assert "Raised by: Sam Staff (teams:aad-staff)" in shown and "Where: a personal chat with PolicyBot" in shown
    assert "physical-abuse: assessed by the gate" in shown and f"Escalation {record.id}" in shown and "{{DATE(" in shown
    assert [a["title"] for a in content["actions"]] == ["Acknowledge", "Close"]
    assert WORDS not in post.body["activity"]["text"]  # the notification preview does not carry the concern
    assert delivered.status == "delivered" and delivered.delivered_channel == DSL_CHANNEL
    assert delivered.delivered_ts == connector.threads[DSL_CHANNEL][0]["id"]


def test_server_errors_then_recovery_post_exactly_one_alert(setup):
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    connector.fail_next(3, status=500)
    delivered = Deliverer(store, parts.alerts, settings, fast_backoff()).deliver(record.id)
    assert delivered.status == "delivered"
    assert len(thread_posts(connector)) == 4 and len(connector.threads[DSL_CHANNEL]) == 1


def test_throttled_with_retry_after_waits_then_posts_once(setup):
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    connector.fail_next(1, status=429, retry_after=1)
    delivered = Deliverer(store, parts.alerts, settings, fast_backoff()).deliver(record.id)
    first, second = thread_posts(connector)
    assert (first.status, second.status) == (429, 201) and second.at - first.at >= 0.95  # Retry-After honoured
    assert delivered.status == "delivered" and len(connector.threads[DSL_CHANNEL]) == 1


def test_a_post_that_landed_before_a_crash_is_found_and_not_posted_again(setup):
    """The process posted the alert and died before marking it delivered: the record is left 'sending'."""
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    assert store.claim(record.id, DSL_CHANNEL)
    activity_id = parts.alerts.post(store.get(record.id), DSL_CHANNEL, build_alert(store.get(record.id)))

    restarted = teams_parts(settings)  # a new process: nothing in memory
    delivered = Deliverer(EscalationStore(Database(settings.database), owner="another-process"), restarted.alerts, settings,
                          fast_backoff()).deliver(record.id)
    assert delivered.status == "delivered" and delivered.delivered_ts == activity_id
    assert len(thread_posts(connector)) == 1 and len(connector.threads[DSL_CHANNEL]) == 1


def test_refused_by_teams_is_permanent_and_not_retried(setup):
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    connector.fail_next(1, status=403)  # the bot is not installed in the DSL's team
    delivered = Deliverer(store, parts.alerts, settings, fast_backoff()).deliver(record.id)
    assert delivered.status == "failed_permanent" and delivered.last_error == "forbidden" and len(thread_posts(connector)) == 1


def test_a_concern_raised_on_another_platform_uses_the_tenants_last_service_url(setup):
    settings, parts, store, connector = setup
    record, _ = store.record(request(connector, platform="slack", reply_to={"platform": "slack", "channel": "D1", "user": "U1"}))
    parts.alerts.service_urls.remember(TENANT, connector.service_url)  # as every authenticated activity does
    assert Deliverer(store, {"teams": parts.alerts}, settings, fast_backoff()).deliver(record.id).status == "delivered"
    assert len(connector.threads[DSL_CHANNEL]) == 1


def test_channels_are_named_as_staff_know_them(tmp_path, stand_ins):
    identity, connector = stand_ins
    settings = teams_settings(tmp_path, identity, connector).model_copy(update={"schools": {"chiltern": SchoolRoutes(
        teams=ChannelRoutes(dsl_channel=DSL_CHANNEL, head_channel=HEAD_CHANNEL))}})
    alerts = teams_parts(settings).alerts
    assert alerts.describe(DSL_CHANNEL) == "the DSL's Teams channel"
    assert alerts.describe(HEAD_CHANNEL) == "the headteacher's Teams channel"


def test_includes_reads_the_channels_members_and_raises_when_teams_cannot_tell(setup):
    """An allegation about the head is never posted on the guess that the head is not in the channel: a failure to
    list the members is a transient delivery error, retried (it was once read as "not a member", a second reader found).
    The members are asked of the serviceUrl stored with the record, not whatever this process last saw."""
    from bot.escalation.channel import DeliveryError

    settings, parts, store, connector = setup
    record, _ = store.record(request(connector))
    parts.alerts.service_urls.remember(TENANT, "http://127.0.0.1:9/not-this-one/")  # another region's, seen last
    connector.members[HEAD_CHANNEL] = [{"id": "29:head", "aadObjectId": "aad-head"}, {"id": "29:other", "aadObjectId": "aad-other"}]
    assert parts.alerts.includes(record, HEAD_CHANNEL, ("teams:aad-head",))
    assert not parts.alerts.includes(record, HEAD_CHANNEL, ("teams:aad-chair",))
    connector.stop()
    with pytest.raises(DeliveryError) as failed:
        parts.alerts.includes(record, HEAD_CHANNEL, ("teams:aad-head",))
    assert failed.value.transient


def test_teams_needs_a_tenant_to_accept_anything(tmp_path, stand_ins):
    identity, connector = stand_ins
    with pytest.raises(TeamsSetupError, match="MICROSOFT_APP_TENANT_ID"):
        teams_parts(teams_settings(tmp_path, identity, connector, tenant_id=None))


# ---------------------------------------------------------------------------------------------- a crash
DELIVERY_PROCESS = """
import json, sys, time
from bot.escalation.delivery import Backoff, Deliverer
from bot.escalation.store import EscalationRequest, EscalationStore
from bot.settings import Settings
from bot.teams.server import teams_parts

settings = Settings.model_validate_json(open(sys.argv[1]).read())
store = EscalationStore(settings.database)
if sys.argv[2] == "raise":
    fields = json.loads(sys.argv[3])
    fields["categories"], fields["reasons"] = tuple(fields["categories"]), tuple(fields["reasons"])
    record, _ = store.record(EscalationRequest(**fields))
    print("recorded", record.id, flush=True)
deliverer = Deliverer(store, {"teams": teams_parts(settings).alerts}, settings, Backoff(initial=0.01, maximum=0.05, sweep_seconds=0.2))
deliverer.start()
while True:
    time.sleep(1)
"""


def delivery_process(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DELIVERY_PROCESS, str(config), *args], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_killed_while_posting_then_restarted_delivers_exactly_once(tmp_path, stand_ins):
    import dataclasses
    import json

    identity, connector = stand_ins
    settings = teams_settings(tmp_path, identity, connector)
    config = tmp_path / "settings.json"
    config.write_text(settings.model_dump_json(), encoding="utf-8")
    connector.hold_posts()  # the Bot Connector takes the post and does not answer

    first = delivery_process(config, "raise", json.dumps(dataclasses.asdict(request(connector))))
    escalation_id = first.stdout.readline().decode().split()[1]
    wait(lambda: connector.held == 1)  # recorded, and its post in flight
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    connector.release_posts()  # the held post is answered 503, posting nothing
    store = EscalationStore(Database(settings.database))
    assert store.get(escalation_id).status == "sending" and connector.threads.get(DSL_CHANNEL) is None

    second = delivery_process(config, "resume")
    try:
        wait(lambda: store.get(escalation_id).status == "delivered")
    finally:
        second.kill()
        second.wait(10)
    time.sleep(0.3)
    assert len(connector.threads[DSL_CHANNEL]) == 1 and len(store.list()) == 1


def test_an_unacknowledged_alert_is_resent_once_to_the_teams_fallback_channel(tmp_path, stand_ins):
    """The same store and re-alerting as Slack's: an alert nobody acknowledged goes, once, to the school's Teams
    fallback channel, marked NOT ACKNOWLEDGED; an acknowledged one does not."""
    from bot.settings import EscalationSettings

    identity, connector = stand_ins
    fallback = "19:fallback@thread.tacv2"
    settings = teams_settings(tmp_path, identity, connector).model_copy(update={
        "schools": {"chiltern": SchoolRoutes(teams=ChannelRoutes(dsl_channel=DSL_CHANNEL, fallback_channel=fallback))},
        "escalation": EscalationSettings(ack_timeout_minutes=0)})
    parts = teams_parts(settings)
    store = EscalationStore(Database(settings.database))
    deliverer = Deliverer(store, parts.alerts, settings, fast_backoff())
    late, _ = store.record(request(connector, key="teams:late"))
    seen, _ = store.record(request(connector, key="teams:seen"))
    deliverer.deliver(late.id)
    deliverer.deliver(seen.id)
    store.acknowledge(seen.id, "teams:aad-dsl")
    assert deliverer.resend_unacknowledged() == 1
    assert deliverer.resend_unacknowledged() == 0
    to_fallback = [p for p in thread_posts(connector) if p.body["channelData"]["channel"]["id"] == fallback]
    assert len(to_fallback) == 1
    shown = texts(to_fallback[0].body["activity"]["attachments"][0]["content"])
    assert "NOT ACKNOWLEDGED" in shown and WORDS in shown
    assert store.get(late.id).resent_to_fallback_at and not store.get(seen.id).resent_to_fallback_at
