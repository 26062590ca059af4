"""Local stand-ins for what a Teams bot talks to, on 127.0.0.1 only, each recording every request.

- `Identity`: the OpenID configuration, a JWKS of RSA keys the tests generate (each with its `endorsements`),
  the OAuth token endpoint; and `mint()` for Bot Connector tokens signed with those keys (or `stranger`, a key
  it does not publish).
- `Connector`: the Bot Connector's REST API under a serviceUrl: new channel threads and personal chats
  (POST v3/conversations), sends, replies, updates and channel members. Faults are scriptable:

      connector.fail_next(2, status=500)                  # the next 2 new threads answer 500, posting nothing
      connector.fail_next(1, status=429, retry_after=1)   # throttled
      connector.fail_next(1, status=502, landed=True)     # posts, then answers 502 (a post that landed)
      connector.hold_posts()                              # new threads hang (until released, or the client dies)
      connector.personal_failures = 1                     # the next personal chat cannot be opened (500)

    `connector.threads[channel]` is what each channel shows; `connector.calls(...)` every request.
- `activity()` and friends: Teams activities as the Bot Connector would send them.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

APP_ID = "00000000-1111-2222-3333-444444444444"
APP_PASSWORD = "teams-test-secret"
TENANT = "tenant-one"
OTHER_TENANT = "tenant-elsewhere"
BOT = f"28:{APP_ID}"
ISSUER = "https://api.botframework.com"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int
    at: float = field(default_factory=time.monotonic)


class _Server:
    """A threading HTTP server on 127.0.0.1:0 whose handler is `self.route(method, path, query, body, headers)`."""

    def __init__(self):
        self.calls_made: list[Call] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parsed = urlparse(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                content_type = headers.get("content-type", "")
                if "json" in content_type:
                    try:
                        body = json.loads(raw or b"null")
                    except ValueError:
                        body = raw.decode("utf-8", "replace")
                elif "form" in content_type:
                    body = dict(parse_qsl(raw.decode()))
                else:
                    body = raw.decode("utf-8", "replace")
                status, payload, extra = owner.route(self.command, parsed.path, dict(parse_qsl(parsed.query)), body, headers)
                owner._record(Call(self.command, parsed.path, body, headers, status))
                data = json.dumps(payload).encode() if payload is not None else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (extra or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, method, path, query, body, headers):  # pragma: no cover - overridden
        return 404, None, None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls_made.append(call)

    def calls(self, where: Callable[[Call], bool] | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls_made if where is None or where(c)]

    def reset(self) -> None:
        with self._lock:
            self.calls_made.clear()

    def wait_for(self, where: Callable[[Call], bool], count: int = 1, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls(where)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} matching requests within {timeout}s; got {len(self.calls(where))}: "
                             f"{[(c.method, c.path, c.status) for c in self.calls()]}")

    def wait_quiet(self, quiet: float = 0.5, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = max((c.at for c in self.calls()), default=0.0)
            if time.monotonic() - last >= quiet:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Identity(_Server):
    """OpenID configuration, JWKS and token endpoint; `mint` signs Bot Connector tokens."""

    def __init__(self):
        self.keys = {"key-teams": (new_key(), ["msteams", "emulator"]), "key-webchat": (new_key(), ["webchat"])}
        self.stranger = new_key()  # never published
        self.token_counter = itertools.count(1)
        super().__init__()

    @property
    def openid_url(self) -> str:
        return f"{self.base}/v1/.well-known/openidconfiguration"

    @property
    def token_url(self) -> str:
        return f"{self.base}/oauth2/v2.0/token"

    def route(self, method, path, query, body, headers):
        if method == "GET" and path == "/v1/.well-known/openidconfiguration":
            return 200, {"issuer": ISSUER, "jwks_uri": f"{self.base}/v1/.well-known/keys",
                         "id_token_signing_alg_values_supported": ["RS256"]}, None
        if method == "GET" and path == "/v1/.well-known/keys":
            keys = []
            for kid, (key, endorsements) in self.keys.items():
                numbers = key.public_key().public_numbers()
                keys.append({"kty": "RSA", "use": "sig", "kid": kid, "n": _b64(numbers.n), "e": _b64(numbers.e),
                             "endorsements": endorsements})
            return 200, {"keys": keys}, None
        if method == "POST" and path == "/oauth2/v2.0/token":
            return 200, {"token_type": "Bearer", "expires_in": 3600, "access_token": f"bot-token-{next(self.token_counter)}"}, None
        return 404, None, None

    def mint(self, service_url: str, *, aud: str = APP_ID, iss: str = ISSUER, kid: str = "key-teams", key=None,
             expires_in: int = 3600, issued_ago: int = 10, **claims) -> str:
        now = int(time.time())
        body = {"iss": iss, "aud": aud, "exp": now + expires_in, "nbf": now - issued_ago, "iat": now - issued_ago}
        if service_url is not None:
            body["serviceurl"] = service_url
        body.update(claims)
        return jwt.encode(body, key or self.keys[kid][0], algorithm="RS256", headers={"kid": kid})

    def token_requests(self) -> list[Call]:
        return self.calls(lambda c: c.path == "/oauth2/v2.0/token")


class Connector(_Server):
    """The Bot Connector REST API under `service_url`."""

    def __init__(self, prefix: str = "/teams/emea/"):
        self.prefix = prefix
        self.threads: dict[str, list[dict]] = {}  # channel -> the thread roots posted there
        self.activities: dict[str, dict] = {}  # activity id -> the activity as last posted or updated
        self.members: dict[str, list[dict]] = {}  # conversation -> members
        self._ids = itertools.count(1700000000001)
        self._faults: list[tuple[int, float | None, bool]] = []
        self._hold = threading.Condition()
        self._holding = False
        self._generation = 0
        self.held = 0  # new-thread posts hanging now
        self.reply_delay = 0.0  # seconds every message send or reply waits before it is answered
        self.personal_failures = 0  # how many next personal-chat creations answer 500
        super().__init__()

    @property
    def service_url(self) -> str:
        return self.base + self.prefix

    def fail_next(self, count: int, status: int = 500, retry_after: float | None = None, landed: bool = False) -> None:
        self._faults.extend([(status, retry_after, landed)] * count)

    def hold_posts(self) -> None:
        """New-thread posts hang from now on; `release_posts` lets later ones through and answers the held ones 503,
        posting nothing (their client has usually died by then)."""
        with self._hold:
            self._holding = True

    def release_posts(self) -> None:
        with self._hold:
            self._holding = False
            self._generation += 1
            self._hold.notify_all()

    def route(self, method, path, query, body, headers):
        if not path.startswith(self.prefix + "v3/conversations"):
            return 404, {"error": {"code": "NotFound"}}, None
        rest = path[len(self.prefix + "v3/conversations"):].strip("/")
        parts = rest.split("/") if rest else []
        if method == "POST" and not parts:
            return self._create(body)
        if method == "POST" and len(parts) == 2 and parts[1] == "activities":
            return self._post(parts[0], body)
        if method == "POST" and len(parts) == 3 and parts[1] == "activities":
            return self._post(parts[0], body, reply_to=parts[2])
        if method == "PUT" and len(parts) == 3 and parts[1] == "activities":
            if parts[2] not in self.activities:
                return 404, {"error": {"code": "NotFound"}}, None
            self.activities[parts[2]] = {**body, "id": parts[2], "conversation": parts[0]}
            return 200, {"id": parts[2]}, None
        if method == "GET" and len(parts) == 2 and parts[1] == "pagedmembers":
            return 200, {"members": self.members.get(parts[0], [])}, None
        return 404, {"error": {"code": "NotFound"}}, None

    def _create(self, body):
        channel = ((body or {}).get("channelData") or {}).get("channel", {}).get("id")
        if not (body or {}).get("isGroup") or not channel:  # a personal chat with one member
            member = ((body or {}).get("members") or [{}])[0].get("id", "")
            if self.personal_failures:
                self.personal_failures -= 1
                return 500, {"error": {"code": "ServiceError"}}, None
            return 201, {"id": f"a:personal-{member}"}, None
        with self._hold:
            if self._holding:
                generation = self._generation
                self.held += 1
                self._hold.wait_for(lambda: self._generation != generation)
                self.held -= 1
                return 503, None, None
        if self._faults:
            status, retry_after, landed = self._faults.pop(0)
            if landed:
                self._new_thread(channel, body)
            return status, {"error": {"code": "ServiceError"}}, ({"Retry-After": str(retry_after)} if retry_after is not None else None)
        activity_id = self._new_thread(channel, body)
        return 201, {"id": f"{channel};messageid={activity_id}", "activityId": activity_id}, None

    def _new_thread(self, channel: str, body) -> str:
        activity_id = str(next(self._ids))
        activity = {**(body.get("activity") or {}), "id": activity_id, "conversation": f"{channel};messageid={activity_id}"}
        self.threads.setdefault(channel, []).append(activity)
        self.activities[activity_id] = activity
        return activity_id

    def _post(self, conversation: str, body, reply_to: str | None = None):
        if self.reply_delay:
            time.sleep(self.reply_delay)
        activity_id = str(next(self._ids))
        self.activities[activity_id] = {**(body or {}), "id": activity_id, "conversation": conversation, "replyTo": reply_to}
        return 201, {"id": activity_id}, None

    # -- what Teams shows -------------------------------------------------------------------------

    def sent(self, conversation: str | None = None) -> list[Call]:
        """Messages sent into conversations (replies and sends), optionally to one conversation."""
        prefix = self.prefix + "v3/conversations/"
        return self.calls(lambda c: c.method == "POST" and c.path.startswith(prefix) and "/activities" in c.path and c.status < 300
                          and (conversation is None or c.path[len(prefix):].split("/activities")[0] == conversation))

    def thread_posts(self) -> list[Call]:
        return self.calls(lambda c: c.method == "POST" and c.path == self.prefix + "v3/conversations" and (c.body or {}).get("isGroup"))

    def updates(self) -> list[Call]:
        return self.calls(lambda c: c.method == "PUT")


def personal_conversation(user: str = "29:staff") -> str:
    return f"a:personal-{user}"


def activity(connector: Connector, text: str = "", *, activity_id: str = "1700000100001", user: str = "29:staff",
             aad: str = "aad-staff", name: str = "Sam Staff", conversation: str | None = None, kind: str = "personal",
             team: str | None = None, tenant: str = TENANT, mention_bot: bool = False, mentions: tuple[tuple[str, str], ...] = (),
             value: dict | None = None, reply_to_id: str | None = None, type: str = "message", **extra) -> dict:
    """A Teams activity as the Bot Connector posts it. `kind`: "personal" or "channel"; `mentions`: (id, name) of
    colleagues written as <at>name</at> in `text` already."""
    conversation = conversation or (personal_conversation(user) if kind == "personal" else "19:staffroom@thread.tacv2;messageid=1700000099000")
    entities = []
    if mention_bot:
        text = f"<at>PolicyBot</at> {text}"
        entities.append({"type": "mention", "text": "<at>PolicyBot</at>", "mentioned": {"id": BOT, "name": "PolicyBot"}})
    entities += [{"type": "mention", "text": f"<at>{n}</at>", "mentioned": {"id": i, "name": n}} for i, n in mentions]
    channel_data = {"tenant": {"id": tenant}}
    if kind == "channel":
        channel_data.update({"team": {"id": team or "19:team-general@thread.tacv2"}, "channel": {"id": conversation.split(";")[0]}})
    body = {
        "type": type, "id": activity_id, "timestamp": "2026-11-21T10:00:00.000Z", "serviceUrl": connector.service_url,
        "channelId": "msteams", "from": {"id": user, "name": name, "aadObjectId": aad},
        "conversation": {"id": conversation, "conversationType": kind, "tenantId": tenant, **({"isGroup": True} if kind == "channel" else {})},
        "recipient": {"id": BOT, "name": "PolicyBot"}, "channelData": channel_data, "entities": entities,
    }
    if type == "message":
        body["text"] = text
    if value is not None:
        body["value"] = value
        body.pop("text", None)
    if reply_to_id:
        body["replyToId"] = reply_to_id
    body.update(extra)
    return body


def post(url: str, body: bytes | str | dict, token: str | None, timeout: float = 10.0, headers: dict | None = None) -> tuple[int, str, float]:
    """POST to the bot as the Bot Connector would: (status, body, seconds taken)."""
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), time.monotonic() - started


# -- the conversation core, built as bot/runtime.py builds it ---------------------------------------------

_RUNTIMES: dict = {}


def shared_runtime(embedder, index_dir, cache_dir):
    """A Runtime over the session's index and model (injected: one model per session), its answerer and gate warm."""
    from pathlib import Path

    from bot.runtime import Runtime
    from bot.settings import Settings

    key = (id(embedder), str(index_dir))
    if key not in _RUNTIMES:
        root = Path(__file__).resolve().parent.parent
        runtime = Runtime(Settings(policies_dir=root / "policies", data_dir=Path(index_dir).parent, models_dir=Path(cache_dir)))
        runtime.__dict__["embedder"] = embedder  # the session's model, not a second copy
        runtime.warm()
        _RUNTIMES[key] = runtime
    return _RUNTIMES[key]


# -- the bot under test: the real parts over the stand-ins ---------------------------------------------------

DSL_CHANNEL = "19:dsl-team@thread.tacv2"
OWNER_CHANNEL = "19:policy-owner@thread.tacv2"
TEAM = "19:team-general@thread.tacv2"


def teams_settings(tmp_path, identity: Identity, connector: Connector | None = None, **teams):
    from bot.settings import ChannelRoutes, EscalationSettings, SchoolRoutes, Settings, TeamsSettings

    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    options = dict(app_id=APP_ID, app_password=APP_PASSWORD, tenant_id=TENANT, openid_metadata_url=identity.openid_url,
                   token_url=identity.token_url, team_schools={TEAM: "chiltern"},
                   user_schools={"aad-staff": "chiltern", "aad-trust": ["chiltern", "kingsmead"], "aad-admin": "chiltern"},
                   admins=("aad-admin",))
    options.update(teams)
    return Settings(policies_dir=root / "policies", data_dir=tmp_path, teams=TeamsSettings(**options),
                    schools={"chiltern": SchoolRoutes(teams=ChannelRoutes(dsl_channel=DSL_CHANNEL, policy_owner_channel=OWNER_CHANNEL))},
                    escalation=EscalationSettings(max_attempts_per_run=6))




def fast_backoff():
    from bot.escalation.delivery import Backoff

    return Backoff(initial=0.01, maximum=0.05, retry_after_cap=3.0, sweep_seconds=0.2, permanent_retry_seconds=0.0)


class Bot:
    """A TeamsApp serving on 127.0.0.1 over a real Conversation (its own SQLite database) and a real Deliverer."""

    def __init__(self, settings, runtime, identity: Identity, connector: Connector, start_delivery: bool = True):
        from bot.core.conversation import Conversation
        from bot.core.state import ConversationState
        from bot.escalation.delivery import Deliverer
        from bot.escalation.store import EscalationStore
        from bot.storage.database import Database
        from bot.teams.server import teams_parts

        self.settings, self.identity, self.connector = settings, identity, connector
        database = Database(settings.database)
        self.store = EscalationStore(database)
        self.state = ConversationState(database)
        self.parts = teams_parts(settings)
        self.deliverer = Deliverer(self.store, {"teams": self.parts.alerts}, settings, fast_backoff())
        self.core = Conversation(settings, runtime.answerer, runtime.gate, self.state, self.store, self.deliverer,
                                 reindex=lambda: runtime.build_index(progress=False).summary())
        self.app = self.parts.app(self.core, self.store)
        self.port = self.app.start_in_thread("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.port}/api/messages"
        if start_delivery:
            self.deliverer.start()

    def send(self, body: dict, token: str | None = "default", **kwargs):
        """POST an activity signed as the Bot Connector signs it; (status, body, seconds)."""
        if token == "default":
            token = self.identity.mint(body.get("serviceUrl", self.connector.service_url))
        return post(self.url, body, token, **kwargs)

    def idle(self) -> None:
        self.app.wait_idle()

    def close(self) -> None:
        self.app.stop_thread()
        self.deliverer.stop(2)
