"""The real Bolt app, driven by signed requests, talking to a real local fake of Slack's Web API."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot import messages as say
from bot.core.conversation import Conversation
from bot.core.state import ConversationState
from bot.escalation.delivery import Backoff, Deliverer
from bot.escalation.store import EscalationStore
from bot.settings import EscalationSettings, SchoolRoutes, Settings, SlackSettings
from bot.slack.alerts import SlackAlertChannel
from bot.slack.app import question_text
from bot.slack.listeners import create_app
from bot.slack.blocks import ASK_PERSON, HELPFUL, neutralise
from tests.slack_api_server import TEAM_ID, slack_api  # noqa: F401  (fixture)

SECRET = "test-signing-secret"
CLAUSE = "below the age of nineteen"
QUESTION = "can I accept a follow from an ex-pupil aged 18?"


# ------------------------------------------------------------------------------------ helpers
def signed(body: str, content_type: str = "application/json", age: int = 0, retry: int | None = None,
           secret: str = SECRET) -> BoltRequest:
    timestamp = str(int(time.time()) - age)
    headers = {
        "content-type": [content_type],
        "x-slack-request-timestamp": [timestamp],
        "x-slack-signature": [SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)],
    }
    if retry is not None:
        headers["x-slack-retry-num"] = [str(retry)]
        headers["x-slack-retry-reason"] = ["http_timeout"]
    return BoltRequest(body=body, headers=headers)


def event_body(event: dict, event_id: str = "Ev0001") -> str:
    return json.dumps({
        "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
        "event_id": event_id, "event_time": int(time.time()), "event": event,
        "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}],
    })


def mention(text: str, channel: str = "CCHIL", ts: str = "1700000100.000100", user: str = "USTAFF", **extra) -> dict:
    return {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}".strip(), "ts": ts, "channel": channel,
            "event_ts": ts, **extra}


def dm(text: str, user: str = "UCHIL", ts: str = "1700000200.000100", **extra) -> dict:
    return {"type": "message", "channel_type": "im", "channel": "DCHIL", "user": user, "text": text, "ts": ts,
            "event_ts": ts, **extra}


def command_body(text: str, user: str = "USTAFF", channel: str = "CCHIL", response_url: str = "") -> str:
    return urlencode({"token": "legacy", "team_id": TEAM_ID, "channel_id": channel, "user_id": user, "command": "/policy",
                      "text": text, "response_url": response_url, "trigger_id": "trig.1"})


def action_body(action_id: str, value: str, user: str, response_url: str, channel: str = "CCHIL") -> str:
    payload = {"type": "block_actions", "user": {"id": user}, "team": {"id": TEAM_ID}, "api_app_id": "A0001",
               "channel": {"id": channel}, "container": {"type": "message", "channel_id": channel},
               "trigger_id": "trig.2", "response_url": response_url,
               "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": value, "action_ts": "1"}]}
    return urlencode({"payload": json.dumps(payload)})


def button(call, action_prefix: str) -> dict:
    for block in call.blocks:
        for element in block.get("elements", []):
            if element.get("action_id", "").startswith(action_prefix):
                return element
    raise AssertionError(f"no {action_prefix} button in {call.blocks}")


def make_settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        slack=SlackSettings(bot_token="xoxb-test", signing_secret=SECRET, channel_schools={"CCHIL": "chiltern"},
                            user_schools={"UCHIL": "chiltern", "UTRUST": ["chiltern", "kingsmead"]}, admins=("UADMIN",)),
        schools={"chiltern": SchoolRoutes(policy_owner_channel="COWNER")},
        escalation=EscalationSettings(dsl_channel="CDSL"),
    )


FAST = Backoff(initial=0.01, maximum=0.05, retry_after_cap=2.0, sweep_seconds=0.1, permanent_retry_seconds=0.0)


@pytest.fixture
def make_app(tmp_path, slack_api, answerer, gate):  # noqa: F811
    """The real Bolt app over a real conversation core: the session's index and gate, a SQLite database in tmp_path,
    and (with deliver=True) the real escalation delivery posting to the Slack stand-in."""
    started = []

    def make(deliver: bool = False, reindex=None):
        settings = make_settings(tmp_path)
        client = WebClient(token="xoxb-test", base_url=slack_api.base_url)
        store = EscalationStore(settings.database)
        deliverer = Deliverer(store, SlackAlertChannel(client), settings, FAST) if deliver else None
        core = Conversation(settings, answerer, gate, ConversationState(settings.database), store if deliver else None, deliverer,
                            reindex=reindex)
        if deliverer is not None:
            deliverer.start()
            started.append(deliverer)
        app = create_app(settings, core, client=client, alerts=store)
        slack_api.reset()  # forget what start-up asked
        return app
    yield make
    for deliverer in started:
        deliverer.stop()


# ------------------------------------------------------------------------------------ answers
@pytest.mark.model
def test_mention_gets_one_threaded_answer_quoting_the_clause_even_when_slack_retries(make_app, slack_api):
    app = make_app()
    first = app.dispatch(signed(event_body(mention(QUESTION))))
    assert first.status == 200

    post = slack_api.wait_for("chat.postMessage")[0]
    assert post.body["channel"] == "CCHIL"
    assert post.body["thread_ts"] == "1700000100.000100"
    assert CLAUSE in post.text.lower()
    assert "Social Media" in post.text  # the citation names the policy
    assert any(b["type"] == "actions" for b in post.blocks)
    assert slack_api.calls("reactions.add")[0].body["timestamp"] == "1700000100.000100"  # shown working

    retried = app.dispatch(signed(event_body(mention(QUESTION)), retry=1))
    assert retried.status == 200
    slack_api.wait_quiet()
    assert len(slack_api.calls("chat.postMessage")) == 1


@pytest.mark.model
def test_no_second_answer_after_a_restart_on_the_same_database(make_app, slack_api):
    make_app().dispatch(signed(event_body(mention(QUESTION))))
    slack_api.wait_for("chat.postMessage")
    slack_api.wait_quiet()

    restarted = make_app()  # a new process: new app, new state on the same SQLite file
    assert restarted.dispatch(signed(event_body(mention(QUESTION)), retry=2)).status == 200
    slack_api.wait_quiet()
    assert len(slack_api.calls("chat.postMessage")) == 0  # reset() at restart cleared the first one


@pytest.mark.model
def test_a_web_api_500_is_retried_and_still_gives_one_answer(make_app, slack_api):
    app = make_app()
    slack_api.fail_next("chat.postMessage", 1)
    app.dispatch(signed(event_body(mention(QUESTION))))
    ok = slack_api.wait_for("chat.postMessage", where=lambda c: c.http_status == 200)
    slack_api.wait_quiet()
    assert len(ok) == 1 and CLAUSE in ok[0].text.lower()


@pytest.mark.model
def test_direct_message_answered_in_the_dm(make_app, slack_api):
    app = make_app()
    app.dispatch(signed(event_body(dm(QUESTION))))
    post = slack_api.wait_for("chat.postMessage")[0]
    assert post.body["channel"] == "DCHIL" and "thread_ts" not in post.body
    assert CLAUSE in post.text.lower()


@pytest.mark.parametrize("body", [
    lambda: BoltRequest(body=event_body(mention(QUESTION)), headers={"content-type": ["application/json"]}),
    lambda: signed(event_body(mention(QUESTION)), secret="not-the-secret"),
    lambda: signed(event_body(mention(QUESTION)), age=600),
], ids=["unsigned", "wrong-signature", "ten-minutes-old"])
def test_unverified_requests_get_401_and_no_slack_call(make_app, slack_api, body):
    app = make_app()
    assert app.dispatch(body()).status == 401
    slack_api.wait_quiet(quiet=0.3)
    assert slack_api.calls() == []


# ------------------------------------------------------------------------------------ /policy
@pytest.mark.model
def test_slash_command_answers_ephemerally(make_app, slack_api):
    app = make_app()
    response = app.dispatch(signed(command_body(QUESTION, response_url=slack_api.base_url + "response"),
                                   content_type="application/x-www-form-urlencoded"))
    assert response.status == 200 and say.WORKING in response.body
    reply = slack_api.wait_for("response")[0]
    assert reply.body["response_type"] == "ephemeral"
    assert CLAUSE in reply.body["text"].lower()
    assert slack_api.calls("chat.postMessage") == []


@pytest.mark.parametrize("command", ["status", "reindex"])
def test_admin_commands_are_refused_to_others(make_app, slack_api, command):
    def no_reindex():
        raise AssertionError("reindex must not run for a non-admin")

    app = make_app(reindex=no_reindex)
    response = app.dispatch(signed(command_body(command, user="USTAFF", response_url=slack_api.base_url + "response"),
                                   content_type="application/x-www-form-urlencoded"))
    assert response.status == 200
    assert "only for PolicyBot admins" in response.body
    slack_api.wait_quiet()
    assert slack_api.calls() == []


def test_admin_status_and_reindex(make_app, slack_api):
    app = make_app(deliver=True, reindex=lambda: "Reindex done: 5 policies.")
    status = app.dispatch(signed(command_body("status", user="UADMIN"), content_type="application/x-www-form-urlencoded"))
    text = status.body
    assert "chiltern" in text and "clauses" in text and "next review" in text
    assert "Safeguarding alerts waiting for delivery: 0" in text

    app.dispatch(signed(command_body("reindex", user="UADMIN", response_url=slack_api.base_url + "response"),
                        content_type="application/x-www-form-urlencoded"))
    assert "Reindex done" in slack_api.wait_for("response")[0].body["text"]


# ------------------------------------------------------------------------------------ awkward input
@pytest.mark.model
@pytest.mark.parametrize("event, expect", [
    (dm("x" * 40_000), "characters long"),
    (mention(""), "Please type a question"),
    (dm("", subtype="file_share", files=[{"id": "F1", "name": "policy.pdf"}]), "can't read attached files"),
    (dm(QUESTION, subtype="file_share", files=[{"id": "F1"}]), CLAUSE),
], ids=["40k-characters", "empty-mention", "file-only", "file-with-question"])
def test_awkward_messages_get_a_sensible_reply(make_app, slack_api, event, expect):
    app = make_app()
    assert app.dispatch(signed(event_body(event))).status == 200
    posts = slack_api.wait_for("chat.postMessage")
    slack_api.wait_quiet()
    assert len(posts) == 1
    assert expect.lower() in posts[0].text.lower() or expect.lower() in json.dumps(posts[0].blocks).lower()


@pytest.mark.parametrize("event", [
    dm("", subtype="message_changed", message={"user": "UCHIL", "text": QUESTION, "ts": "1.1"}, user=None),
    dm("hi", subtype="bot_message", bot_id="BOTHER"),
    dm("my own words", user="UBOT"),
    {"type": "message", "channel_type": "channel", "channel": "CCHIL", "user": "USTAFF", "text": QUESTION, "ts": "3.3"},
], ids=["edited", "other-bot", "own-message", "channel-chatter"])
def test_ignored_messages_get_no_reply(make_app, slack_api, event):
    app = make_app()
    assert app.dispatch(signed(event_body(event))).status == 200
    slack_api.wait_quiet(quiet=0.5)
    assert slack_api.calls("chat.postMessage") == [] and slack_api.calls("chat.postEphemeral") == []


def test_mention_in_an_unconfigured_channel_says_how_to_set_it_up(make_app, slack_api):
    app = make_app()
    app.dispatch(signed(event_body(mention(QUESTION, channel="CRANDOM", user="UNOBODY"))))
    reply = slack_api.wait_for("chat.postEphemeral")[0]
    assert reply.body["user"] == "UNOBODY" and "channel_schools" in reply.text
    assert slack_api.calls("chat.postMessage") == []


# ------------------------------------------------------------------------------------ buttons
@pytest.mark.model
def test_feedback_records_question_id_and_vote_only(make_app, slack_api, tmp_path):
    app = make_app()
    app.dispatch(signed(event_body(mention(QUESTION))))
    post = slack_api.wait_for("chat.postMessage")[0]
    vote = button(post, HELPFUL)
    app.dispatch(signed(action_body(HELPFUL, vote["value"], "USTAFF", slack_api.base_url + "response"),
                        content_type="application/x-www-form-urlencoded"))
    assert say.THANKS_FOR_FEEDBACK in slack_api.wait_for("response")[0].body["text"]
    question_id = json.loads(vote["value"])["q"]
    assert ConversationState(tmp_path / "policybot.sqlite3").votes() == [(question_id, "USTAFF", "chiltern", "helpful")]
    assert "ex-pupil" not in vote["value"]


@pytest.mark.model
def test_ask_a_person_posts_to_the_policy_owner_with_mentions_neutralised(make_app, slack_api):
    app = make_app()
    app.dispatch(signed(event_body(mention("<!channel> @here <@U999> can I accept a follow from an ex-pupil aged 18?"))))
    post = slack_api.wait_for("chat.postMessage")[0]
    ask = button(post, ASK_PERSON)
    app.dispatch(signed(action_body(ASK_PERSON, ask["value"], "USTAFF", slack_api.base_url + "response"),
                        content_type="application/x-www-form-urlencoded"))
    handed = slack_api.wait_for("chat.postMessage", count=2)[1]
    assert handed.body["channel"] == "COWNER"
    assert "ex-pupil" in handed.text and "<@USTAFF>" in handed.text
    assert "<!channel>" not in handed.text and "<@U999>" not in handed.text and "@here" not in handed.text
    assert "COWNER" in slack_api.wait_for("response")[0].body["text"]


def test_neutralise_breaks_every_kind_of_mention():
    text = neutralise("<!channel> <!here> @channel @here @everyone <@U123> a & b")
    assert "<" not in text and "@channel" not in text and "@here" not in text and "@everyone" not in text
    assert question_text("<@UBOT> ask <@U1|sam> about <https://x.org|this> <!here>", "UBOT") == "ask a colleague about this"


@pytest.mark.model
def test_ambiguous_user_picks_a_school_once_and_it_is_remembered(make_app, slack_api, tmp_path):
    app = make_app()
    app.dispatch(signed(event_body(dm(QUESTION, user="UTRUST"))))
    picker = slack_api.wait_for("chat.postMessage")[0]
    assert say.CHOOSE_SCHOOL in picker.text
    pick = button(picker, "policybot_choose_school:chiltern")
    app.dispatch(signed(action_body(pick["action_id"], pick["value"], "UTRUST", slack_api.base_url + "response", channel="DCHIL"),
                        content_type="application/x-www-form-urlencoded"))
    answer = slack_api.wait_for("chat.postMessage", count=2)[1]
    assert CLAUSE in answer.text.lower()
    assert ConversationState(tmp_path / "policybot.sqlite3").chosen_school("UTRUST") == "chiltern"

    restarted = make_app()
    restarted.dispatch(signed(event_body(dm(QUESTION, user="UTRUST", ts="1700000300.000100"), event_id="Ev0002")))
    again = slack_api.wait_for("chat.postMessage")[0]
    assert CLAUSE in again.text.lower()  # answered straight away, no second picker


def test_app_home_is_published(make_app, slack_api):
    app = make_app()
    app.dispatch(signed(event_body({"type": "app_home_opened", "user": "UCHIL", "channel": "DCHIL", "tab": "home",
                                    "event_ts": "1.1"})))
    view = slack_api.wait_for("views.publish")[0]
    assert view.body["user_id"] == "UCHIL"
    rendered = json.dumps(view.view)
    assert "Chiltern" in rendered and "Safeguarding" in rendered


# ------------------------------------------------------------------------------------ safeguarding
CONCERN = "I noticed a bruise on a year 3 pupil's arm and he said his dad hit him with a belt"


@pytest.mark.model
def test_concern_in_a_channel_is_recorded_and_answered_privately(make_app, slack_api, tmp_path):
    app = make_app(deliver=True)
    app.dispatch(signed(event_body(mention(CONCERN + " <!here>", ts="1700000400.000100"))))

    private = slack_api.wait_for("chat.postEphemeral")[0]
    assert private.body["user"] == "USTAFF" and "Write down straight away" in private.text
    assert "Sent to" in private.text and ": the DSL will contact you" in private.text
    alert = slack_api.wait_for("chat.postMessage", where=lambda c: c.body.get("channel") == "CDSL")[0]
    slack_api.wait_quiet()
    assert [c.body["channel"] for c in slack_api.calls("chat.postMessage")] == ["CDSL"]  # nothing in the public thread
    (record,) = EscalationStore(tmp_path / "policybot.sqlite3").list()
    assert record.dedupe_key == f"{TEAM_ID}:CCHIL:1700000400.000100"
    assert "bruise" in record.text and record.raised_by == "USTAFF" and record.route == "dsl"
    assert record.notified_at and "bruise" in json.dumps(alert.blocks)


@pytest.mark.model
def test_concern_reaches_the_dsl_channel_through_the_real_store_and_deliverer(make_app, slack_api):
    app = make_app(deliver=True)
    event = event_body(mention(CONCERN, ts="1700000500.000100"))
    app.dispatch(signed(event))
    app.dispatch(signed(event, retry=1))
    alert = slack_api.wait_for("chat.postMessage", where=lambda c: c.body.get("channel") == "CDSL")[0]
    assert "bruise" in alert.text or "bruise" in json.dumps(alert.blocks)
    assert slack_api.wait_for("chat.postEphemeral")[0].body["user"] == "USTAFF"
    slack_api.wait_quiet()
    posts = slack_api.calls("chat.postMessage")
    assert [c.body["channel"] for c in posts] == ["CDSL"]  # one alert, nothing in the public thread
    assert len(slack_api.calls("chat.postEphemeral")) == 1


def test_manifest_asks_for_what_the_app_uses():
    import yaml

    from tests.conftest import ROOT

    manifest = yaml.safe_load((ROOT / "deploy" / "slack-manifest.yaml").read_text(encoding="utf-8"))
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "commands", "im:history", "reactions:write"} <= scopes
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "app_home_opened"}
    assert manifest["settings"]["socket_mode_enabled"] and manifest["settings"]["interactivity"]["is_enabled"]
    assert manifest["features"]["app_home"]["home_tab_enabled"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/policy"]
