"""Inbound authentication for POST /api/messages, as the Bot Connector authentication spec says, every rule.

The SDK's own validator (JwtTokenValidator) reads keys from a hard-coded URL, does not check the issuer by
default, ignores key endorsements and compares the `serviceurl` claim by host only, when at all. Here:

1. a Bearer token in the Authorization header, a well-formed JWT signed RS256;
2. by a key listed at the `jwks_uri` of the OpenID metadata (`teams.openid_metadata_url`; plain http only for
   loopback), cached for a day, refreshed early for an unknown key id at most every five minutes;
3. issuer `teams.issuer` (https://api.botframework.com), audience == the app id;
4. inside its validity window, with five minutes of clock skew;
5. that key endorsed for the activity's channelId ("msteams");
6. a `serviceurl` claim equal to the activity's serviceUrl;
7. and an activity from a tenant the settings name (`teams.tenant_id` / `teams.tenants`).

1-4 need only the header and run before the body is read; 5-7 need the activity. Each failure is an
`AuthError` (HTTP 401, nothing else happens). The result is the SDK's `ClaimsIdentity`, which its adapter takes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import aiohttp
import jwt
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import ClaimsIdentity

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
LEEWAY_SECONDS = 300  # the spec's five minutes of clock skew
KEYS_TTL_SECONDS = 24 * 3600
UNKNOWN_KEY_REFRESH_SECONDS = 300
FETCH_TIMEOUT_SECONDS = 10.0
TEAMS_CHANNEL = "msteams"


class AuthError(Exception):
    """The request is not from the Bot Connector for this bot (HTTP 401); `reason` is for the log, never the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """The signing keys could not be fetched (HTTP 503: the Bot Connector tries again)."""


@dataclass(frozen=True)
class Token:
    """A token whose signature, issuer, audience and lifetime are checked; the key that signed it."""

    raw: str
    claims: dict
    key: dict


def loopback_or_https(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1"))


class OpenIdKeys:
    """OpenID metadata -> jwks_uri -> {kid: key}, each key with its Bot Framework `endorsements`."""

    def __init__(self, metadata_url: str, ttl: float = KEYS_TTL_SECONDS, unknown_key_refresh: float = UNKNOWN_KEY_REFRESH_SECONDS):
        if not loopback_or_https(metadata_url):
            raise ValueError(f"{metadata_url!r} must be https (plain http only for loopback)")
        self.metadata_url = metadata_url
        self.ttl = ttl
        self.unknown_key_refresh = unknown_key_refresh
        self._keys: dict[str, dict] = {}
        self._algorithms: tuple[str, ...] = (ALGORITHM,)
        self._fetched = float("-inf")
        self._tried = float("-inf")
        self._lock: asyncio.Lock | None = None
        self._lock_loop = None

    async def key(self, kid: str) -> dict | None:
        async with self._loop_lock():
            age = time.monotonic() - self._fetched
            stale = age > self.ttl
            unknown = kid not in self._keys and time.monotonic() - self._tried > self.unknown_key_refresh
            if stale or unknown:
                await self._refresh(keep_old=not stale)
            return self._keys.get(kid)

    async def prefetch(self) -> None:
        """Fetch the keys at start-up, so the first request does not wait for them. A failure is one warning: requests
        get 503 (the Bot Connector tries again) until the keys can be fetched."""
        try:
            async with self._loop_lock():
                await self._refresh(keep_old=False)
        except KeysUnavailable as exc:
            log.warning("cannot fetch the Bot Connector's signing keys yet (%s); Teams requests get 503 until they can be "
                        "fetched: check teams.openid_metadata_url and the network", exc)

    @property
    def algorithms(self) -> tuple[str, ...]:
        return self._algorithms

    async def _refresh(self, keep_old: bool) -> None:
        self._tried = time.monotonic()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)) as session:
                metadata = await _get_json(session, self.metadata_url)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not isinstance(jwks_uri, str) or not loopback_or_https(jwks_uri):
                    raise KeysUnavailable("the OpenID metadata has no https jwks_uri")
                document = await _get_json(session, jwks_uri)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            if keep_old and self._keys:
                log.warning("could not refresh the Bot Connector signing keys (%s); keeping the cached ones", type(exc).__name__)
                return
            raise KeysUnavailable(type(exc).__name__) from None
        keys = document.get("keys") if isinstance(document, dict) else None
        fetched = {k["kid"]: k for k in keys or [] if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        if not fetched:  # a key document with no keys in it is a fault of the host, not a revocation of every key
            if keep_old and self._keys:
                log.warning("the Bot Connector's key document lists no keys; keeping the cached ones")
                return
            raise KeysUnavailable("the key document lists no keys")
        self._keys = fetched
        supported = metadata.get("id_token_signing_alg_values_supported")
        self._algorithms = tuple(a for a in supported if a == ALGORITHM) if isinstance(supported, list) else (ALGORITHM,)
        self._fetched = time.monotonic()
        log.info("Bot Connector signing keys fetched: %d keys", len(self._keys))

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # a lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


async def _get_json(session: aiohttp.ClientSession, url: str):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json(content_type=None)


class BotConnectorAuth:
    def __init__(self, app_id: str, keys: OpenIdKeys, issuer: str, tenants: tuple[str, ...], leeway: float = LEEWAY_SECONDS):
        self.app_id = app_id
        self.keys = keys
        self.issuer = issuer
        self.tenants = frozenset(tenants)
        self.leeway = leeway

    async def token(self, authorization: str | None) -> Token:
        """Rules 1-4, from the Authorization header alone."""
        scheme, _, raw = (authorization or "").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw or " " in raw:
            raise AuthError("no Bearer token")
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            raise AuthError("not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("not signed RS256")
        kid = header.get("kid")
        key = await self.keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthError("signed by a key not in the metadata's jwks_uri")
        if ALGORITHM not in self.keys.algorithms:
            raise AuthError("the metadata does not allow RS256")
        try:
            claims = jwt.decode(raw, jwt.PyJWK(key, algorithm=ALGORITHM).key, algorithms=[ALGORITHM], audience=self.app_id,
                                issuer=self.issuer, leeway=self.leeway, options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token ({type(exc).__name__})") from None
        except (ValueError, TypeError):  # a key document PyJWT cannot use
            raise AuthError("unusable signing key") from None
        return Token(raw, claims, key)

    def identity(self, token: Token, activity: Activity) -> ClaimsIdentity:
        """Rules 5-7, against the activity; the SDK's identity for its adapter."""
        channel = activity.channel_id.channel if activity.channel_id else ""
        endorsements = token.key.get("endorsements")
        if channel != TEAMS_CHANNEL or not isinstance(endorsements, list) or channel not in endorsements:
            raise AuthError(f"key not endorsed for channel {str(channel)[:20]!r}")
        if not activity.service_url or token.claims.get("serviceurl") != activity.service_url:
            raise AuthError("serviceurl claim does not match the activity's serviceUrl")
        tenant = tenant_of(activity)
        stated = activity.conversation.tenant_id if activity.conversation else None
        if not tenant or tenant not in self.tenants or (stated and stated != tenant):
            raise AuthError("tenant not configured")
        return ClaimsIdentity(token.claims, authentication_type="Bearer", security_token=token.raw)


def tenant_of(activity: Activity) -> str | None:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = data.get("tenant") if isinstance(data.get("tenant"), dict) else {}
    value = tenant.get("id") or (activity.conversation.tenant_id if activity.conversation else None)
    return value if isinstance(value, str) and value else None
