"""POST /api/messages on aiohttp: authenticate, parse, answer within five seconds; the turn runs afterwards.

The SDK's own entry (CloudAdapter.process) awaits the whole turn before it answers, turns a non-Activity body
into a 500 and never de-duplicates. Here, in order:

1. the Bearer token (auth.py) from the headers alone: no valid token, 401 before the body is read;
2. the body: at most `MAX_BODY` bytes (413), arriving within `READ_TIMEOUT` seconds (408), JSON (400), an
   Activity with a type, a conversation and a serviceUrl (400); nothing a client sends gets a 5xx;
3. the activity against the token: endorsement, serviceurl, tenant (401);
4. a redelivery of an activity being or already handled here gets 200 at once;
5. `dispatch` does what must be durable and returns the response; the answer follows in the background.

At most `WORKERS` requests are handled at once; `BACKLOG` more wait, the rest get 503 (the Bot Connector tries
again), as bot/slack/http.py bounds Slack's endpoint. Logs carry ids and reasons, never bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import ClaimsIdentity
from pydantic import ValidationError

from bot.teams.auth import AuthError, BotConnectorAuth, KeysUnavailable

log = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
MAX_BODY = 1_000_000
READ_TIMEOUT = 10.0
WORKERS = 16
BACKLOG = 64
SEEN_LIMIT = 20_000
SEEN_SECONDS = 24 * 3600

Dispatch = Callable[[ClaimsIdentity, Activity], Awaitable[web.StreamResponse]]


class _NoBodies(logging.Filter):
    """The SDK logs a failed Activity validation with the whole input, which can be what staff typed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Validation error for Activity"):
            record.msg, record.args, record.exc_info, record.exc_text = "Validation error for Activity (body not logged)", (), None, None
        return True


logging.getLogger("microsoft_agents.activity.activity").addFilter(_NoBodies())


class Seen:
    """Activities handled (or being handled) by this process, by (conversation, activity id); bounded, expiring.
    The core's own claim makes a question's de-duplication durable; this catches every kind of activity."""

    def __init__(self, limit: int = SEEN_LIMIT, ttl: float = SEEN_SECONDS):
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.limit, self.ttl = limit, ttl

    def claim(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        while self._seen and (len(self._seen) >= self.limit or next(iter(self._seen.values())) < now - self.ttl):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    def release(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)


class MessagesEndpoint:
    def __init__(self, auth: BotConnectorAuth, dispatch: Dispatch, workers: int = WORKERS, backlog: int = BACKLOG,
                 read_timeout: float = READ_TIMEOUT):
        self.auth = auth
        self.dispatch = dispatch
        self.read_timeout = read_timeout
        self.seen = Seen()
        self._slots = asyncio.Semaphore(workers)
        self._waiting = 0
        self._limit = workers + backlog

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._waiting >= self._limit:
            return _status(503, "busy")
        self._waiting += 1
        try:
            async with self._slots:
                return await self._handle(request)
        finally:
            self._waiting -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            token = await self.auth.token(request.headers.get("Authorization"))
        except AuthError as exc:
            log.warning("refused a request: %s", exc.reason)
            return _status(401, "unauthorized")
        except KeysUnavailable as exc:
            log.error("cannot check requests: the Bot Connector's signing keys are unavailable (%s); check "
                      "teams.openid_metadata_url and the network", exc)
            return _status(503, "signing keys unavailable")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _status(413, "too large")
        try:
            raw = await asyncio.wait_for(request.read(), self.read_timeout)  # aiohttp stops at client_max_size
        except web.HTTPRequestEntityTooLarge:
            return _status(413, "too large")
        except asyncio.TimeoutError:
            return _status(408, "too slow")
        except (ConnectionError, ValueError):
            return _status(400, "unreadable body")
        activity = _activity(raw)
        if activity is None:
            return _status(400, "not an Activity")
        try:
            identity = self.auth.identity(token, activity)
        except AuthError as exc:
            log.warning("refused an activity: %s", exc.reason)
            return _status(401, "unauthorized")
        key = (activity.conversation.id, activity.id or "")
        if activity.id and not self.seen.claim(key):
            log.info("redelivered activity acknowledged, not handled again")
            return web.Response(status=200)
        try:
            return await self.dispatch(identity, activity)
        except Exception:
            self.seen.release(key)
            log.exception("could not handle an activity type=%s", activity.type)
            return _status(503, "try again")


def _activity(raw: bytes) -> Activity | None:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    try:
        activity = Activity.model_validate(body)
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None
    if not activity.type or not activity.conversation or not activity.conversation.id or not activity.service_url:
        return None
    return activity


def _status(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def web_app(endpoint: MessagesEndpoint) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(MESSAGES_PATH, endpoint.handle)
    app.router.add_get("/healthz", _healthz)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")
