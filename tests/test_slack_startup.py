"""`policybot serve --http` against the local Slack stand-in: each start-up problem is one line on stderr.

Fatal problems exit non-zero with one line that says what is wrong and what to do, before anything is built;
a DSL channel the bot is not in, and a school whose concerns would alert nobody, are one warning line each at
start-up, and the bot still serves. No traceback unless POLICYBOT_DEBUG is set.

A DNS failure is made inside the bot's own process: a `sitecustomize` on its PYTHONPATH makes every name other
than 127.0.0.1 and localhost fail to resolve, as a server with broken DNS does, so no query leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.slack_api_server import ServeProcess, fake_slack  # noqa: F401 (fake_slack: a fixture)

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "policybot"


def serve(data: Path, api_url: str, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("SLACK_APP_TOKEN", "POLICYBOT_DEBUG", "POLICYBOT_RAISE", "POLICYBOT_CONFIG")}
    full = {**inherited, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret", "SLACK_API_URL": api_url,
            "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([str(EXE), "--data", str(data), "serve", "--http", "--host", "127.0.0.1", "--port", "0"],
                          cwd=ROOT, env=full, capture_output=True, text=True, timeout=120)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, done.stderr
    assert len(lines) == 1, done.stderr  # one line: no traceback, no library warnings
    assert "Traceback" not in done.stderr and not done.stdout.strip()
    return lines[0]


@pytest.fixture
def slack(fake_slack):
    fake_slack.reset()
    fake_slack.clear_faults()
    fake_slack.scopes = None
    yield fake_slack
    fake_slack.clear_faults()
    fake_slack.scopes = None


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_no_network(tmp_path):
    line = one_line(serve(tmp_path, f"http://127.0.0.1:{closed_port()}/api/"))
    assert line.startswith("Error: Cannot reach Slack at http://127.0.0.1:") and "check the network" in line


BROKEN_DNS = """
import socket
_resolve = socket.getaddrinfo


def _broken(host, *args, **kwargs):  # this machine's DNS is down: only loopback names resolve
    if host in ("127.0.0.1", "localhost", "::1", None):
        return _resolve(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


socket.getaddrinfo = _broken
"""


def test_dns_failure(tmp_path):
    site = tmp_path / "broken-dns"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BROKEN_DNS, encoding="utf-8")
    line = one_line(serve(tmp_path / "data", "https://slack.com/api/", PYTHONPATH=str(site)))
    assert line == "Error: Cannot resolve Slack's address (https://slack.com/api/): check this server's DNS and network"


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked"])
def test_an_invalid_or_revoked_token(tmp_path, slack, code):
    slack.error_next("auth.test", code)
    line = one_line(serve(tmp_path, slack.base_url))
    assert line == f"Error: SLACK_BOT_TOKEN was refused by Slack ({code}): reinstall the app and copy its new token"


@pytest.mark.parametrize("token, kind", [("xoxp-1-2-3", "a user token"), ("xapp-1-A1-2", "an app-level token"), ("hunter2", "not a Slack token")])
def test_the_wrong_kind_of_token(tmp_path, slack, token, kind):
    line = one_line(serve(tmp_path, slack.base_url, SLACK_BOT_TOKEN=token))
    assert line.startswith(f"Error: SLACK_BOT_TOKEN is {kind}, not a bot token (xoxb-...)") and "Bot User OAuth Token" in line
    assert not slack.calls("auth.test")  # refused before any token is sent anywhere


def test_a_missing_scope(tmp_path, slack):
    slack.scopes = "app_mentions:read,chat:write,commands,im:history,im:read,im:write,channels:read,groups:read"
    line = one_line(serve(tmp_path, slack.base_url))
    assert line.startswith("Error: The Slack app lacks the scope reactions:write: add it under OAuth & Permissions")


def test_the_debug_setting_shows_the_traceback(tmp_path, slack):
    slack.error_next("auth.test", "invalid_auth")
    done = serve(tmp_path, slack.base_url, POLICYBOT_DEBUG="1")
    assert done.returncode != 0 and "Traceback" in done.stderr
    assert "SlackApiError" in done.stderr  # with the cause: what Slack answered


def test_a_dsl_channel_the_bot_is_not_in_and_a_school_with_no_channel_are_warnings(tmp_path, slack, bundled_index):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(bundled_index, data / "index")
    config = tmp_path / "policybot.yaml"
    config.write_text("schools:\n  chiltern:\n    dsl_channel: CDSLOUT\n    head_channel: CHEAD\n    chair_channel: CCHAIR\n",
                      encoding="utf-8")
    slack.channels["CDSLOUT"] = {"name": "dsl-chiltern", "is_member": False}
    process = ServeProcess(slack.base_url, data, "secret", config=config)
    try:
        assert process.url.endswith("/slack/events")  # it serves
    finally:
        process.stop()
    warnings = [line for line in process.log_path.read_text(encoding="utf-8").splitlines() if line.startswith("Warning: ")]
    assert ("Warning: schools.chiltern.dsl_channel CDSLOUT (#dsl-chiltern): the bot is not in this channel, so alerts "
            "cannot be posted; type /invite @PolicyBot in the channel") in warnings
    assert any(line.startswith("Warning: kingsmead: no channel for the DSL on any platform: such a concern alerts nobody")
               for line in warnings)
    assert not any("chiltern: no channel" in line for line in warnings)
