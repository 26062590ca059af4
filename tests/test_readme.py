"""Every command in the README's shell blocks, run as an admin would type it (CI runs `make test` itself)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.slack_api_server import text_after

README = ROOT / "README.md"
CHAT_INPUT = "chiltern\ncan i post pics of my class on my own insta\nquit\n"

pytestmark = pytest.mark.model


def shell_blocks() -> list[list[str]]:
    """The README's ```sh blocks, each a list of commands (comments and continuations joined)."""
    blocks = re.findall(r"^\s*```sh\n(.*?)^\s*```", README.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    out = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        out.append([line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")])
    return out


def without_comment(command: str) -> str:
    """The command before its trailing `# comment` (a # inside quotes is part of the command)."""
    quote = None
    for index, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and index and command[index - 1].isspace():
            return command[:index].rstrip()
    return command


def is_server(command: str) -> bool:
    return " serve" in command or "slack_standin" in command


# `make test` is what CI runs (and running it here would run this file again)
ONE_SHOT = [without_comment(c) for block in shell_blocks() for c in block if not is_server(c) and without_comment(c) != "make test"]


@pytest.fixture
def admin_env(tmp_path, bundled_index) -> dict:
    data = tmp_path / "data"
    shutil.copytree(bundled_index, data / "index")
    env = {**os.environ, "POLICYBOT_DATA": str(data), "HF_HUB_OFFLINE": "1"}
    for key in ("POLICYBOT_RAISE", "POLICYBOT_CONFIG", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "MICROSOFT_APP_ID", "POLICYBOT_SCHOOL"):
        env.pop(key, None)
    return env


def test_the_readme_blocks_are_found():
    commands = [c for block in shell_blocks() for c in block]
    assert "make run" in ONE_SHOT and any("policybot show" in c for c in ONE_SHOT) and any("slack_standin send" in c for c in commands)


@pytest.mark.parametrize("command", ONE_SHOT)
def test_readme_command(command, admin_env):
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=admin_env, input=CHAT_INPUT, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert result.stdout.strip(), command
    assert "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_trying_slack_without_a_workspace_as_the_readme_says(admin_env):
    """The README's three terminals: the stand-in, the bot over the Events API, and two signed messages."""
    block = next(b for b in shell_blocks() if any("slack_standin serve" in c for c in b))
    ports = {"8901": str(free_port()), "3000": str(free_port())}

    def local(command: str) -> str:
        return re.sub(r"\b(8901|3000)\b", lambda m: ports[m.group(1)], without_comment(command))

    standin_cmd, bot_cmd, *sends = [local(c) for c in block]
    standin = subprocess.Popen(["bash", "-c", "exec " + standin_cmd], cwd=ROOT, env=admin_env, stdout=subprocess.PIPE)
    bot = None
    try:
        assert text_after(standin.stdout, "listening on", 30) is not None
        bot = subprocess.Popen(["bash", "-c", bot_cmd.replace(".venv/bin/policybot serve", "exec .venv/bin/policybot serve")],
                               cwd=ROOT, env=admin_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert text_after(bot.stdout, "listening on", 300) is not None, bot.stderr.read1().decode(errors="replace")
        for send in sends:
            to_bot = f"{send} --bot http://127.0.0.1:{ports['3000']}/slack/events"  # the README's bot is on the default port
            sent = subprocess.run(["bash", "-c", to_bot], cwd=ROOT,
                                  env=admin_env, capture_output=True, text=True, timeout=60)
            assert sent.returncode == 0 and "HTTP 200" in sent.stdout, sent.stdout + sent.stderr
        answer = text_after(standin.stdout, "chat.postMessage DSTAFF", 60)
        alert = text_after(standin.stdout, "chat.postMessage CDSL", 60)
        assert answer is not None and alert is not None
    finally:
        for process in (bot, standin):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
