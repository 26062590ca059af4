"""A real local HTTP server that stands in for Slack's Web API (as bolt-python's tests/mock_web_api_server/).

Start it on 127.0.0.1 port 0, point `WebClient(base_url=server.base_url)` (or SLACK_API_URL) at it,
and assert on what Slack would have received:

    with SlackAPIServer() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        ...
        post = slack.wait_for("chat.postMessage")[0]
        assert post.body["thread_ts"] == "123.456"

Every request is recorded (method, parsed form/JSON/query body, headers). Faults are scriptable:

    slack.fail_next("chat.postMessage", 2)                    # next 2 calls answer HTTP 500
    slack.ratelimit_next("chat.postMessage", 1, retry_after=1) # HTTP 429 {"ok": false, "error": "ratelimited"}
    slack.error_for_channel("C404", "channel_not_found")       # any call naming that channel fails with that error
    slack.accept_then_fail_next("chat.postMessage", 1)         # do what was asked, then answer HTTP 500 (a post that landed)
    slack.channels["CDSL"] = {"name": "dsl-team", "is_member": False}   # what conversations.info says of a channel

The pytest fixture `slack_api` starts and stops one per test: `from tests.slack_api_server import slack_api`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlparse

import pytest

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0001"


@dataclass(frozen=True)
class Call:
    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    http_status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def blocks(self) -> list:
        blocks = self.body.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return blocks

    @property
    def view(self) -> dict:
        view = self.body.get("view") or {}
        return json.loads(view) if isinstance(view, str) else view


class SlackAPIServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._faults: dict[str, list[tuple[int, dict, dict]]] = {}
        self._channel_errors: dict[str, str] = {}
        self._ts = itertools.count(1)
        self.users: dict[str, dict] = {}
        self.history: dict[str, list[dict]] = {}
        self.channels: dict[str, dict] = {}  # conversations.info answers; unknown channels: a member, named after the id
        self.members: dict[str, list[str]] = {}
        self.scopes: str | None = None  # auth.test's X-OAuth-Scopes header (None: not sent)
        self._accept_then_fail: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                parsed = urlparse(self.path)
                method = parsed.path.rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body: dict[str, Any] = dict(parse_qsl(parsed.query))
                ctype = self.headers.get("Content-Type", "")
                if raw:
                    if "json" in ctype:
                        try:
                            body.update(json.loads(raw))
                        except ValueError:
                            body["_raw"] = raw.decode("utf-8", "replace")
                    else:
                        body.update(parse_qsl(raw.decode("utf-8", "replace")))
                status, payload, extra = server._respond(method, body)
                server._record(Call(method, body, {k.lower(): v for k, v in self.headers.items()}, status))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-slack-api", daemon=True)

    # lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> "SlackAPIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # faults ------------------------------------------------------------------------------------
    def fail_next(self, method: str, n: int = 1, status: int = 500) -> None:
        with self._lock:
            self._faults.setdefault(method, []).extend([(status, {"ok": False, "error": "internal_error"}, {})] * n)

    def ratelimit_next(self, method: str, n: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(method, []).extend(
                [(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})] * n
            )

    def error_next(self, method: str, error: str, n: int = 1) -> None:
        with self._lock:
            self._faults.setdefault(method, []).extend([(200, {"ok": False, "error": error}, {})] * n)

    def error_for_channel(self, channel: str, error: str = "channel_not_found") -> None:
        with self._lock:
            self._channel_errors[channel] = error

    def accept_then_fail_next(self, method: str, n: int = 1, status: int = 500) -> None:
        """The next n calls do what they ask (a post lands in the channel's history) and then answer `status`."""
        with self._lock:
            self._accept_then_fail[method] = self._accept_then_fail.get(method, 0) + n
            self._accept_status = status

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._channel_errors.clear()
            self._accept_then_fail.clear()

    # recorded calls ----------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self, method: str | None = None, ok_only: bool = False) -> list[Call]:
        with self._lock:
            out = [c for c in self._calls if method is None or c.method == method]
        return [c for c in out if c.http_status == 200] if ok_only else out

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for(self, method: str, count: int = 1, timeout: float = 30.0,
                 where: Callable[[Call], bool] | None = None) -> list[Call]:
        """Poll until at least `count` matching calls are recorded; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = [c.method for c in self.calls()]
                raise AssertionError(f"expected {count} {method} call(s) within {timeout}s, got {len(found)}; calls: {seen}")
            time.sleep(0.02)

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no call has arrived for `quiet` seconds (lets background work finish before a 'no more calls' check)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls()
            last = calls[-1].at if calls else 0.0
            if time.monotonic() - last >= quiet:
                return
            time.sleep(0.05)

    # responses ---------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"

    def _respond(self, method: str, body: dict) -> tuple[int, dict, dict]:
        with self._lock:
            queue = self._faults.get(method)
            if queue:
                return queue.pop(0)
            channel = body.get("channel") or body.get("channel_id")
            if channel and channel in self._channel_errors:
                return 200, {"ok": False, "error": self._channel_errors[channel]}, {}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        payload = handler(body) if handler is not None else {"ok": True}
        with self._lock:
            if self._accept_then_fail.get(method):
                self._accept_then_fail[method] -= 1
                return self._accept_status, {"ok": False, "error": "internal_error"}, {}
        extra = {"X-OAuth-Scopes": self.scopes} if method == "auth.test" and self.scopes is not None else {}
        return 200, payload, extra

    def _message(self, body: dict, ts: str) -> dict:
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "text": body.get("text", ""), "ts": ts}
        if body.get("blocks"):
            message["blocks"] = body["blocks"] if not isinstance(body["blocks"], str) else json.loads(body["blocks"])
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        return message

    def _api_auth_test(self, body):
        return {"ok": True, "url": "https://test.slack.com/", "team": "Test School", "user": "policybot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _api_chat_postMessage(self, body):
        ts = self._next_ts()
        channel = body.get("channel")
        message = self._message(body, ts)
        with self._lock:
            self.history.setdefault(channel, []).insert(0, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _api_chat_postEphemeral(self, body):
        return {"ok": True, "message_ts": self._next_ts()}

    def _api_chat_update(self, body):
        return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts"), "text": body.get("text", ""),
                "message": self._message(body, body.get("ts", ""))}

    def _api_chat_getPermalink(self, body):
        channel, ts = body.get("channel", ""), str(body.get("message_ts", ""))
        return {"ok": True, "channel": channel,
                "permalink": f"https://test.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    def _api_conversations_history(self, body):
        with self._lock:
            messages = list(self.history.get(body.get("channel"), []))
        return {"ok": True, "messages": messages[: int(body.get("limit") or 100)], "has_more": False}

    def _api_conversations_info(self, body):
        channel = body.get("channel", "")
        info = {"id": channel, "name": channel.lower(), "is_member": True, **self.channels.get(channel, {})}
        return {"ok": True, "channel": info}

    def _api_conversations_members(self, body):
        return {"ok": True, "members": list(self.members.get(body.get("channel"), [])), "response_metadata": {"next_cursor": ""}}

    def _api_conversations_open(self, body):
        return {"ok": True, "channel": {"id": "D" + str(body.get("users", "U")).lstrip("U")[:10]}}

    def _api_apps_connections_open(self, body):
        return {"ok": True, "url": "wss://127.0.0.1/link"}

    def _api_views_open(self, body):
        return {"ok": True, "view": {"id": "V0002", **(self._as_dict(body.get("view")))}}

    def _api_reactions_add(self, body):
        return {"ok": True}

    def _api_reactions_remove(self, body):
        return {"ok": True}

    def _api_views_publish(self, body):
        return {"ok": True, "view": {"id": "V0001", "type": "home", **(self._as_dict(body.get("view")))}}

    def _api_users_info(self, body):
        user = body.get("user", "")
        info = self.users.get(user) or {"id": user, "name": user.lower(), "is_bot": False, "deleted": False,
                                         "real_name": "Staff Member", "tz": "Europe/London"}
        return {"ok": True, "user": info}

    @staticmethod
    def _as_dict(value) -> dict:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return {}
        return value or {}


@pytest.fixture
def slack_api():
    """A fresh fake Slack Web API per test: `slack_api.base_url`, `slack_api.calls(...)`, `slack_api.wait_for(...)`."""
    server = SlackAPIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fake_slack():
    """One fake Slack Web API for a module's tests (those that share one served process)."""
    server = SlackAPIServer().start()
    try:
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------------------------------------
# `policybot serve --http` as a separate process, pointed at a fake Web API (tests and bench/load_slack.py)

def text_after(stream, marker: str, timeout: float) -> str | None:
    """What follows `marker` on the first line of a process's output that has it (a `serve` command's address), or
    None when no such line comes within `timeout` seconds."""
    found: list[str] = []

    def read():
        for line in stream:
            text = line.decode("utf-8", "replace")
            if marker in text:
                found.append(text.split(marker, 1)[1].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else None


class ServeProcess:
    """`policybot serve --http --port 0` in a subprocess; `.url` is its /slack/events endpoint. Always `stop()` it."""

    def __init__(self, api_url: str, data_dir, signing_secret: str, config=None, cwd=None, env: dict | None = None,
                 ready_timeout: float = 180.0):
        import os
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parent.parent
        exe = Path(sys.executable).parent / "policybot"
        full_env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": signing_secret,
                    "SLACK_API_URL": api_url, "HF_HUB_OFFLINE": "1", **(env or {})}
        full_env.pop("SLACK_APP_TOKEN", None)
        if config:
            full_env["POLICYBOT_CONFIG"] = str(config)
        self.log_path = Path(data_dir) / "serve.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(exe), "--data", str(data_dir), "serve", "--http", "--host", "127.0.0.1", "--port", "0"],
            cwd=str(cwd or root), env=full_env, stdout=subprocess.PIPE, stderr=self._log,
        )
        self.url = self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout: float) -> str:
        url = text_after(self.proc.stdout, "listening on", timeout)
        if url is None:
            self.stop()
            raise RuntimeError(f"policybot serve did not start within {timeout}s; log:\n{self.log_path.read_text(errors='replace')[-3000:]}")
        return url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def post_signed(url: str, body: str, secret: str, content_type: str = "application/json", age: int = 0,
                retry: int | None = None, signature: str | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """POST a request to the app as Slack would, signed with `secret`; returns (status, body)."""
    import urllib.error
    import urllib.request

    from slack_sdk.signature import SignatureVerifier

    timestamp = str(int(time.time()) - age)
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp,
               "X-Slack-Signature": signature if signature is not None
               else SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)}
    if signature == "":
        headers.pop("X-Slack-Signature")
        headers.pop("X-Slack-Request-Timestamp")
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    request = urllib.request.Request(url, data=body.encode("utf-8"), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
