"""The same checks against `policybot serve --http` running as a separate process over real HTTP."""

from __future__ import annotations

import json
import shutil
import time
from urllib.parse import urlencode

import pytest

from tests.slack_api_server import TEAM_ID, ServeProcess, fake_slack, post_signed  # noqa: F401 (fake_slack: a fixture)

SECRET = "process-signing-secret"
CLAUSE = "below the age of nineteen"
QUESTION = "can I accept a follow from an ex-pupil aged 18?"
CONFIG = """
slack:
  channel_schools: {CCHIL: chiltern}
  admins: [UADMIN]
"""

pytestmark = pytest.mark.model


def event_body(event_id: str, ts: str, text: str = QUESTION, channel: str = "CCHIL") -> str:
    event = {"type": "app_mention", "user": "USTAFF", "text": f"<@UBOT> {text}", "ts": ts, "channel": channel, "event_ts": ts}
    return json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
                       "event_id": event_id, "event_time": int(time.time()), "event": event,
                       "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}]})


def command_body(text: str, user: str, response_url: str) -> str:
    return urlencode({"token": "legacy", "team_id": TEAM_ID, "channel_id": "CCHIL", "user_id": user, "command": "/policy",
                      "text": text, "response_url": response_url, "trigger_id": "trig.1"})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, bundled_index):
    """A data folder holding a copy of the session's index, so the process does not rebuild it."""
    data = tmp_path_factory.mktemp("serve-data")
    shutil.copytree(bundled_index, data / "index")
    (data / "policybot.yaml").write_text(CONFIG, encoding="utf-8")
    return data


@pytest.fixture(scope="module")
def served(fake_slack, data_dir):
    process = ServeProcess(fake_slack.base_url, data_dir, SECRET, config=data_dir / "policybot.yaml")
    yield process
    process.stop()


@pytest.fixture
def slack(fake_slack, served):
    fake_slack.wait_quiet()
    fake_slack.reset()
    return fake_slack


def test_process_answers_a_mention_once_in_its_thread(served, slack):
    body = event_body("EvP1", "1700001000.000100")
    assert post_signed(served.url, body, SECRET)[0] == 200
    post = slack.wait_for("chat.postMessage", timeout=60)[0]
    assert post.body["thread_ts"] == "1700001000.000100" and CLAUSE in post.text.lower()

    assert post_signed(served.url, body, SECRET, retry=1)[0] == 200
    slack.wait_quiet(quiet=0.5)
    assert len(slack.calls("chat.postMessage")) == 1


@pytest.mark.parametrize("how", ["unsigned", "wrong-signature", "ten-minutes-old"])
def test_process_refuses_unverified_requests(served, slack, how):
    body = event_body("EvP2", "1700001100.000100")
    kwargs = {"unsigned": {"signature": ""}, "wrong-signature": {"signature": "v0=" + "0" * 64},
              "ten-minutes-old": {"age": 600}}[how]
    assert post_signed(served.url, body, SECRET, **kwargs)[0] == 401
    slack.wait_quiet(quiet=0.5)
    assert slack.calls() == []


def test_process_slash_command_is_ephemeral_and_admin_commands_refused(served, slack):
    status, text = post_signed(served.url, command_body(QUESTION, "USTAFF", slack.base_url + "response"), SECRET,
                               content_type="application/x-www-form-urlencoded")
    assert status == 200
    reply = slack.wait_for("response", timeout=60)[0]
    assert reply.body["response_type"] == "ephemeral" and CLAUSE in reply.body["text"].lower()

    status, text = post_signed(served.url, command_body("reindex", "USTAFF", slack.base_url + "response"), SECRET,
                               content_type="application/x-www-form-urlencoded")
    assert status == 200 and "only for PolicyBot admins" in text

    status, text = post_signed(served.url, command_body("status", "UADMIN", slack.base_url + "response"), SECRET,
                               content_type="application/x-www-form-urlencoded")
    assert status == 200 and "chiltern" in text and "clauses" in text


def test_process_long_message_gets_a_polite_reply(served, slack):
    assert post_signed(served.url, event_body("EvP4", "1700001300.000100", text="y" * 40_000), SECRET)[0] == 200
    assert "characters long" in slack.wait_for("chat.postMessage", timeout=60)[0].text


def test_process_restart_does_not_answer_a_retried_event_again(fake_slack, data_dir, served):
    """Runs its own process on the same data folder: answer, stop, start again, redeliver."""
    body = event_body("EvP5", "1700001400.000100")
    fake_slack.wait_quiet()
    fake_slack.reset()
    assert post_signed(served.url, body, SECRET)[0] == 200
    fake_slack.wait_for("chat.postMessage", timeout=60)
    fake_slack.wait_quiet()
    served.stop()

    fake_slack.reset()
    again = ServeProcess(fake_slack.base_url, data_dir, SECRET, config=data_dir / "policybot.yaml")
    try:
        assert post_signed(again.url, body, SECRET, retry=1)[0] == 200
        fake_slack.wait_quiet(quiet=1.0)
        assert fake_slack.calls("chat.postMessage") == []
    finally:
        again.stop()
