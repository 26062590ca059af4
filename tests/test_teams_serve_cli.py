"""The black-box check of issue 26's interface: `policybot serve --teams --host HOST --port PORT` as a deployment
runs it, settings in the YAML file POLICYBOT_CONFIG names with the MICROSOFT_* environment overriding them, driven
only over HTTP by the local identity and Bot Connector stand-ins with JWTs signed by the tests' key."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slack_api_server import text_after
from tests.teams_standins import APP_ID, APP_PASSWORD, TENANT, Connector, Identity, activity, personal_conversation, post

ROOT = Path(__file__).resolve().parent.parent
DSL = "19:dsl-chiltern@thread.tacv2"
QUESTION = "can I accept a follow from an ex-pupil aged 18?"
CONCERN = "a year 9 girl told me her stepdad hits her when he's been drinking"

pytestmark = pytest.mark.model


def settings_file(path: Path, identity: Identity) -> None:
    # the file names another app; the environment's MICROSOFT_* must win, or no token below would be accepted
    path.write_text(f"""school: chiltern
teams:
  app_id: "00000000-0000-0000-0000-000000000000"
  app_password: "not-the-secret"
  tenant_id: "00000000-0000-0000-0000-000000000001"
  openid_metadata_url: "{identity.openid_url}"
  token_url: "{identity.token_url}"
schools:
  chiltern:
    teams:
      dsl_channel: "{DSL}"
""", encoding="utf-8")


@pytest.fixture
def served(tmp_path, bundled_index):
    identity, connector = Identity(), Connector()
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(bundled_index, data / "index")
    settings_file(tmp_path / "policybot.yaml", identity)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLICYBOT_CONFIG", "POLICYBOT_RAISE"))}
    env.update(POLICYBOT_CONFIG=str(tmp_path / "policybot.yaml"), MICROSOFT_APP_ID=APP_ID, MICROSOFT_APP_PASSWORD=APP_PASSWORD,
               MICROSOFT_APP_TENANT_ID=TENANT, HF_HUB_OFFLINE="1")
    started = time.monotonic()
    process = subprocess.Popen([str(Path(sys.executable).parent / "policybot"), "--data", str(data), "serve", "--teams",
                                "--host", "127.0.0.1", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=open(tmp_path / "serve.log", "wb"))
    url = text_after(process.stdout, "bound to ", 120)
    try:
        assert url, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        yield url, identity, connector, time.monotonic() - started, process
    finally:
        if process.poll() is None:
            process.kill()
        identity.stop()
        connector.stop()


def test_serve_teams_answers_alerts_once_and_stops(served):
    url, identity, connector, ready_seconds, process = served
    print(f"ready in {ready_seconds:.1f}s")  # the bar is 10 s after the index exists (bench/load_teams.py measures it)

    body = activity(connector, QUESTION, activity_id="1800000000001")
    for _ in range(2):  # the Bot Connector's redelivery of the same activity
        assert post(url, body, identity.mint(connector.service_url))[0] in (200, 202)
    answer_path = f"/{personal_conversation()}/activities/1800000000001"
    [reply] = connector.wait_for(lambda c: c.path.endswith(answer_path), timeout=60)
    assert "nineteen" in json.dumps(reply.body)  # Chiltern's own rule, quoted
    assert any(e.get("type") == "https://schema.org/Message" for e in reply.body.get("entities", []))  # Teams citations

    assert post(url, activity(connector, CONCERN, activity_id="1800000000002"), identity.mint(connector.service_url))[0] in (200, 202)
    connector.wait_for(lambda c: (c.body or {}).get("channelData", {}).get("channel", {}).get("id") == DSL, timeout=60)
    connector.wait_quiet(1.0)
    assert len(connector.threads[DSL]) == 1
    assert len(connector.calls(lambda c: c.path.endswith(answer_path))) == 1  # the redelivered question answered once

    assert post(url, activity(connector, QUESTION, activity_id="1800000000003"), identity.mint(connector.service_url, aud="someone-else"))[0] == 401
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_serve_teams_beside_slacks_events_api_shares_one_process_and_one_store(tmp_path, bundled_index):
    """`serve --teams --http` with Slack's tokens set: Teams on --port, Slack's Events API on --slack-port, one
    process; a question through each is answered, and a concern from each is one record in the one store."""
    from tests.slack_api_server import SlackAPIServer, post_signed
    from tests.test_slack_serve_process import event_body

    identity, connector, slack = Identity(), Connector(), SlackAPIServer().start()
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(bundled_index, data / "index")
    settings_file(tmp_path / "policybot.yaml", identity)
    with open(tmp_path / "policybot.yaml", "a", encoding="utf-8") as extra:
        extra.write("    dsl_channel: CDSL\n")  # chiltern's Slack DSL channel, beside its Teams one
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "POLICYBOT_CONFIG", "POLICYBOT_RAISE"))}
    env.update(POLICYBOT_CONFIG=str(tmp_path / "policybot.yaml"), MICROSOFT_APP_ID=APP_ID, MICROSOFT_APP_PASSWORD=APP_PASSWORD,
               MICROSOFT_APP_TENANT_ID=TENANT, HF_HUB_OFFLINE="1", SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="both-secret",
               SLACK_API_URL=slack.base_url)
    process = subprocess.Popen([str(Path(sys.executable).parent / "policybot"), "--data", str(data), "serve", "--teams", "--http",
                                "--host", "127.0.0.1", "--port", "0", "--slack-port", "0"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.log", "wb"))
    try:
        slack_url = text_after(process.stdout, "listening on ", 120)
        teams_url = text_after(process.stdout, "bound to ", 60)
        assert slack_url and teams_url, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]

        assert post_signed(slack_url, event_body("EvBOTH1", "1800000001.000100", channel="CSTAFF"), "both-secret")[0] == 200
        assert "nineteen" in slack.wait_for("chat.postMessage", timeout=60)[0].text
        assert post(teams_url, activity(connector, QUESTION, activity_id="1800000000011"), identity.mint(connector.service_url))[0] in (200, 202)
        [reply] = connector.wait_for(lambda c: c.path.endswith("/activities/1800000000011"), timeout=60)
        assert "nineteen" in json.dumps(reply.body)

        assert post_signed(slack_url, event_body("EvBOTH2", "1800000001.000200", CONCERN, channel="CSTAFF"), "both-secret")[0] == 200
        assert post(teams_url, activity(connector, CONCERN, activity_id="1800000000012"), identity.mint(connector.service_url))[0] in (200, 202)
        slack.wait_for("chat.postMessage", timeout=60, where=lambda c: c.body.get("channel") == "CDSL")
        connector.wait_for(lambda c: (c.body or {}).get("channelData", {}).get("channel", {}).get("id") == DSL, timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        listed = subprocess.run([str(Path(sys.executable).parent / "policybot"), "--data", str(data), "escalations", "list"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert len([line for line in listed.stdout.splitlines() if "chiltern" in line]) == 2, listed.stdout  # one store, both
    finally:
        if process.poll() is None:
            process.kill()
        identity.stop()
        connector.stop()
        slack.stop()
