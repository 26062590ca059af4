"""Fuzzing the public interfaces from outside (hypothesis): `policybot ask -` and Slack's /slack/events endpoint.

Whatever arrives, each input gets one clear answer or one clear error, nothing crashes, nothing on one
input costs another, an unsigned request reaches no listener, and nothing a client sends gets a 5xx.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.slack_api_server import TEAM_ID, SlackAPIServer, ServeProcess, fake_slack, post_signed  # noqa: F401 (fake_slack: a fixture)

pytestmark = pytest.mark.model

SECRET = "fuzz-signing-secret"
SCHOOLS = ["chiltern", "mill-lane", "kingsmead", "pennine-way", "cardinal-heenan"]
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
# what staff type, and what breaks parsers: any unicode (surrogates, controls, RTL, emoji), very long, markup
texts = st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=3000),
                  st.sampled_from(["", " ", "\x00", "<@UBOT>", "<!channel>", "```", "*" * 5000, "\ud800", "y" * 40_000]))


@pytest.fixture(scope="module")
def asker(tmp_path_factory, bundled_index):
    """`policybot ask - --json` running on a copy of the session's index; one line in, one line out."""
    data = tmp_path_factory.mktemp("ask-data")
    shutil.copytree(bundled_index, data / "index")
    exe = Path(sys.executable).parent / "policybot"
    proc = subprocess.Popen([str(exe), "--data", str(data), "ask", "-", "--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


SENTINEL = "can I accept a friend request from an ex-pupil?"


def ask_line(proc, line: bytes) -> list[dict]:
    """Send one line, then a known question; returns what came back for the line (a blank line gets nothing).
    The known question is answered after it, whatever the line held."""
    proc.stdin.write(line.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n")
    proc.stdin.write(json.dumps({"question": SENTINEL, "school": "chiltern"}).encode() + b"\n")
    proc.stdin.flush()
    outs = []
    while True:
        out = proc.stdout.readline()
        assert out, "the asking process stopped"
        row = json.loads(out)
        if row.get("question") == SENTINEL and row.get("school") == "chiltern" and "error" not in row:
            assert row["status"] in {"answered", "unsure"} and row["citations"]
            return outs
        outs.append(row)


def one_clear_outcome(out: dict) -> None:
    """An answer (with its status), a safeguarding reply, or one error line naming the input line."""
    if "error" in out:
        assert out["error"].startswith("line ") and "\n" not in out["error"] and out["answered"] is False
    else:
        assert out["answer"].strip() and out.get("status") in {"answered", "unsure", "not_covered", "escalated"}


@FUZZ
@given(text=texts, school=st.one_of(st.sampled_from(SCHOOLS), st.text(max_size=40), st.none()))
def test_any_question_and_school_on_a_json_line_gets_one_clear_outcome(asker, text, school):
    row = {"question": text, **({"school": school} if school is not None else {})}
    outs = ask_line(asker, json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    assert len(outs) == 1  # a JSON object is never a blank line
    out = outs[0]
    one_clear_outcome(out)
    if school in SCHOOLS and "error" not in out and out.get("status") != "escalated":
        assert all(c["school"] == school for c in out["citations"])  # never another school's clause


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_any_bytes_on_a_line_get_at_most_one_clear_outcome_and_the_next_line_is_still_answered(asker, raw):
    outs = ask_line(asker, raw)
    assert len(outs) <= 1
    for out in outs:
        one_clear_outcome(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory, bundled_index, fake_slack):
    data = tmp_path_factory.mktemp("fuzz-serve")
    shutil.copytree(bundled_index, data / "index")
    (data / "policybot.yaml").write_text("slack:\n  channel_schools: {CCHIL: chiltern}\n"
                                         "schools:\n  chiltern:\n    policy_owner_channel: COWNER\n", encoding="utf-8")
    process = ServeProcess(fake_slack.base_url, data, SECRET, config=data / "policybot.yaml")
    yield process
    assert process.proc.poll() is None, "the server died under fuzzing"
    process.stop()


_event_ids = iter(range(10**6))


def event(text: str) -> str:
    n = next(_event_ids)
    ts = f"{1700003000 + n}.000100"
    body = {"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback", "event_id": f"EvF{n}",
            "event_time": int(time.time()), "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}],
            "event": {"type": "app_mention", "user": "USTAFF", "text": f"<@UBOT> {text}", "ts": ts, "channel": "CCHIL", "event_ts": ts}}
    return json.dumps(body, ensure_ascii=False)


@FUZZ
@given(text=texts)
def test_any_signed_mention_is_acknowledged_and_answered_in_its_thread(served, fake_slack, text):
    fake_slack.wait_quiet()
    fake_slack.reset()
    body = event(text.encode("utf-8", "replace").decode("utf-8"))
    status, _ = post_signed(served.url, body, SECRET)
    assert status == 200
    ts = json.loads(body)["event"]["ts"]
    # an answer in the message's thread, or (a safeguarding reply, a notice) one message only the sender sees
    reply = wait_for_reply(fake_slack, ts)
    assert reply.text.strip()
    fake_slack.wait_quiet(quiet=0.5)
    assert len(replies_to(fake_slack, ts)) == 1


def replies_to(slack: SlackAPIServer, ts: str) -> list:
    return [c for c in slack.calls() if (c.method == "chat.postMessage" and c.body.get("thread_ts") == ts)
            or (c.method == "chat.postEphemeral" and c.body.get("user") == "USTAFF")]


def wait_for_reply(slack: SlackAPIServer, ts: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not replies_to(slack, ts):
        assert time.monotonic() < deadline, f"no reply within {timeout}s; calls: {[c.method for c in slack.calls()]}"
        time.sleep(0.1)
    return replies_to(slack, ts)[0]


@FUZZ
@given(body=st.one_of(st.binary(max_size=3000), texts.map(event).map(lambda b: b.encode("utf-8", "surrogatepass"))),
       how=st.sampled_from(["unsigned", "wrong-secret", "replayed"]))
def test_unsigned_wrongly_signed_or_replayed_requests_reach_no_listener(served, fake_slack, body, how):
    fake_slack.wait_quiet()
    fake_slack.reset()
    text = body.decode("utf-8", "replace")
    if how == "unsigned":
        status, _ = post_signed(served.url, text, SECRET, signature="")
    elif how == "wrong-secret":
        status, _ = post_signed(served.url, text, "not-the-secret")
    else:
        status, _ = post_signed(served.url, text, SECRET, age=6 * 60)
    assert status == 401
    fake_slack.wait_quiet(quiet=0.3)
    assert fake_slack.calls("chat.postMessage") == []


@FUZZ
@given(raw=st.binary(max_size=3000), content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"]))
def test_signed_garbage_gets_a_clear_4xx_or_an_ack_and_never_a_5xx(served, raw, content_type):
    status, _ = post_signed(served.url, raw.decode("utf-8", "replace"), SECRET, content_type=content_type)
    assert 200 <= status < 500


def test_stalled_uploads_are_cut_off_and_questions_are_answered_meanwhile(served, fake_slack):
    """Clients that send headers and then nothing are cut off within READ_TIMEOUT; a question meanwhile is answered."""
    from bot.slack.http import READ_TIMEOUT, WORKERS

    address = urlparse(served.url)
    stalled = [socket.create_connection((address.hostname, address.port)) for _ in range(WORKERS - 4)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{")
        fake_slack.wait_quiet()
        fake_slack.reset()
        body = event("can I accept a friend request from an ex-pupil?")
        assert post_signed(served.url, body, SECRET, timeout=20)[0] == 200
        wait_for_reply(fake_slack, json.loads(body)["event"]["ts"])
        for sock in stalled:
            sock.settimeout(READ_TIMEOUT + 20)
            assert sock.recv(4096) == b""  # closed without a word: nothing to answer
    finally:
        for sock in stalled:
            sock.close()


@FUZZ
@given(question=texts, question_id=st.text(max_size=80),
       planted=st.sampled_from(["<!channel>", "<!here>", "@channel", "@everyone", "<@U0HEAD>", "<#C0SECRET>", "<https://evil.example|click>"]))
def test_a_forged_ask_a_person_value_is_echoed_harmlessly(served, fake_slack, question, question_id, planted):
    """The button's value comes back from the client: whatever it holds, the policy owner's channel gets plain text
    that mentions nobody but the member of staff who pressed it."""
    from urllib.parse import urlencode

    from bot.slack.blocks import ASK_PERSON

    fake_slack.wait_quiet()
    fake_slack.reset()
    value = json.dumps({"q": question_id, "s": "chiltern", "t": f"{question} {planted}"}, ensure_ascii=False)
    payload = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": "USTAFF"}, "api_app_id": "A0001",
               "token": "legacy", "trigger_id": "trig.1", "response_url": fake_slack.base_url + "response",
               "channel": {"id": "CCHIL"}, "container": {"type": "message", "message_ts": "1700000000.000100"},
               "actions": [{"type": "button", "action_id": ASK_PERSON, "block_id": "policybot_feedback", "value": value,
                            "action_ts": "1700000001.000100"}]}
    body = urlencode({"payload": json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace").decode("utf-8")})
    status, _ = post_signed(served.url, body, SECRET, content_type="application/x-www-form-urlencoded")
    assert status == 200
    fake_slack.wait_for("response", timeout=60)  # the member of staff is told what happened
    posts = fake_slack.calls("chat.postMessage")
    assert [c.body.get("channel") for c in posts] == ["COWNER"]
    for post in posts:
        echoed = post.text.replace("<@USTAFF>", "")
        assert "<!" not in echoed and "<@" not in echoed and "<#" not in echoed and "<http" not in echoed, echoed
        assert "@channel" not in echoed and "@everyone" not in echoed and "@here" not in echoed, echoed
