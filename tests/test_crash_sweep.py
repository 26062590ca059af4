"""Kill `policybot serve --http` (SIGKILL) at every moment of a concern's delivery; the next process delivers it once.

Driven only from outside, as Slack drives it: signed Events API requests over real HTTP to the running
process, a real local server standing in for Slack's Web API, the process killed without warning and
started again on the same data folder. After each kill the DSL's channel must hold exactly one alert for
each concern so far: none lost, none sent twice.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from tests.slack_api_server import TEAM_ID, SlackAPIServer, ServeProcess, post_signed

SECRET = "crash-signing-secret"
CONFIG = """
slack:
  channel_schools: {CCHIL: chiltern}
schools:
  chiltern:
    dsl_channel: CDSL
"""
CONCERN = "a Y8 girl in my form just told me her stepdad hits her with a belt and she is scared to go home tonight"
# kill this long after Slack's ack of the event: before, during and after the alert's post
DELAYS = (0.0, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)

pytestmark = pytest.mark.model


def event_body(event_id: str, ts: str, text: str) -> str:
    event = {"type": "app_mention", "user": "USTAFF", "text": f"<@UBOT> {text}", "ts": ts, "channel": "CCHIL", "event_ts": ts}
    return json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
                       "event_id": event_id, "event_time": int(time.time()), "event": event,
                       "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}]})


@pytest.fixture
def data_dir(tmp_path, bundled_index):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(bundled_index, data / "index")
    (data / "policybot.yaml").write_text(CONFIG, encoding="utf-8")
    return data


def start(slack: SlackAPIServer, data_dir) -> ServeProcess:
    return ServeProcess(slack.base_url, data_dir, SECRET, config=data_dir / "policybot.yaml")


def landed(slack: SlackAPIServer) -> int:
    """How many alerts the DSL's channel holds (what conversations.history shows, as a DSL would see it)."""
    return len(slack.history.get("CDSL", []))


def test_killed_at_any_moment_after_the_ack_each_concern_reaches_the_dsl_once(data_dir):
    slack = SlackAPIServer().start()
    process = start(slack, data_dir)
    unsent_at_kill = []  # the delays at which the killed process had not yet posted the alert
    try:
        for n, delay in enumerate(DELAYS, 1):
            status, _ = post_signed(process.url, event_body(f"EvK{n}", f"17000020{n:02d}.000100", f"{CONCERN} ({n})"), SECRET)
            assert status == 200
            time.sleep(delay)
            process.proc.kill()
            process.proc.wait(timeout=10)
            process.stop()
            if landed(slack) < n:
                unsent_at_kill.append(delay)
            process = start(slack, data_dir)  # delivers whatever the killed process had stored and not sent
            deadline = time.monotonic() + 60
            while landed(slack) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            slack.wait_quiet(quiet=1.5, timeout=30)
            assert landed(slack) == n, f"killed {delay}s after the ack: {landed(slack)} alerts for {n} concerns"
        assert unsent_at_kill, "every kill came after the post: the sweep never tested a restart's delivery"
    finally:
        process.stop()
        slack.stop()


def test_killed_before_the_ack_the_platforms_retry_delivers_the_alert_once(data_dir):
    """Slack redelivers an event it got no answer for; the process that gets the retry raises the concern once."""
    slack = SlackAPIServer().start()
    process = start(slack, data_dir)
    body = event_body("EvKB", "1700002100.000100", CONCERN)
    try:
        def send():
            try:
                post_signed(process.url, body, SECRET, timeout=5)
            except OSError:
                pass  # the process died before it answered: Slack would retry, as below

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(0.02)  # the request is in flight
        process.proc.kill()
        process.proc.wait(timeout=10)
        process.stop()
        sender.join(10)
        process = start(slack, data_dir)
        assert post_signed(process.url, body, SECRET, retry=1)[0] == 200
        slack.wait_for("chat.postMessage", timeout=60, where=lambda c: c.body.get("channel") == "CDSL")
        slack.wait_quiet(quiet=1.5, timeout=30)
        assert landed(slack) == 1
        assert post_signed(process.url, body, SECRET, retry=2)[0] == 200  # a later retry raises nothing more
        slack.wait_quiet(quiet=1.5, timeout=30)
        assert landed(slack) == 1
    finally:
        process.stop()
        slack.stop()


def test_a_post_that_landed_but_answered_500_is_not_sent_again(data_dir):
    slack = SlackAPIServer().start()
    slack.accept_then_fail_next("chat.postMessage", 1)
    process = start(slack, data_dir)
    try:
        assert post_signed(process.url, event_body("EvK500", "1700002200.000100", CONCERN), SECRET)[0] == 200
        deadline = time.monotonic() + 60
        while landed(slack) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        slack.wait_for("conversations.history", timeout=60)  # the delivery looked before posting again
        slack.wait_quiet(quiet=2.0, timeout=30)
        assert landed(slack) == 1
    finally:
        process.stop()
        slack.stop()


@pytest.mark.parametrize("setup", ["settings file", "one-school environment"])
def test_a_concern_addressed_to_a_colleague_still_reaches_the_dsl(data_dir, setup):
    """Staff often start with the person they mean ("<@U0JANE> ..."): the concern is about the child, and reaches
    the DSL once; in the one-school setup (POLICYBOT_SCHOOL and POLICYBOT_DSL_CHANNEL only) it was once routed
    as an allegation about the colleague, to no channel, and the staff member told it had been passed on."""
    slack = SlackAPIServer().start()
    if setup == "settings file":
        process = start(slack, data_dir)
    else:
        (data_dir / "policybot.yaml").unlink()
        process = ServeProcess(slack.base_url, data_dir, SECRET, env={"POLICYBOT_SCHOOL": "chiltern", "POLICYBOT_DSL_CHANNEL": "CDSL"})
    try:
        text = "<@U0JANE> a year 9 girl told me her stepdad hits her when he's been drinking"
        assert post_signed(process.url, event_body("EvKJ", "1700002300.000100", text), SECRET)[0] == 200
        slack.wait_for("chat.postMessage", timeout=60, where=lambda c: c.body.get("channel") == "CDSL")
        slack.wait_quiet(quiet=1.5, timeout=30)
        assert landed(slack) == 1
        told = [c.text for c in slack.calls() if c.body.get("channel") == "CCHIL" or c.method in ("chat.postEphemeral", "response")]
        assert any("#cdsl" in t.lower() for t in told) and not any("Nobody has been alerted" in t for t in told), told  # told where it went
    finally:
        process.stop()
        slack.stop()
