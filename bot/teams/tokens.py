"""The bot's own bearer token for the Bot Connector: OAuth client credentials, POSTed as a form to
`settings.teams.token_endpoint()`, cached until five minutes before it expires, never retried blindly.

The SDK's MsalAuth cannot be pointed at a plain token URL (it insists on MSAL's https authority discovery), so
this provider is plugged into the SDK through its generic `ConnectionManager(provider_factory=...)`. It always
asks for the Bot Connector's scope, whatever the SDK passes, so no claim in an incoming token can change
what the bot's token is good for. It is used from more than one event loop (the server's, the alert worker's),
so its cache is guarded by a thread lock, never held across a request.
"""

from __future__ import annotations

import logging
import threading
import time

import aiohttp
from microsoft_agents.hosting.core import AgentAuthConfiguration, ConnectionManager

log = logging.getLogger(__name__)

SCOPE = "https://api.botframework.com/.default"
EARLY_SECONDS = 300  # renew this long before expiry
TIMEOUT_SECONDS = 10.0


class TokenError(Exception):
    """The token endpoint refused or failed; `status` is its HTTP status (0: no answer)."""

    def __init__(self, status: int, retry_after: float | None = None):
        super().__init__(f"token endpoint answered {status or 'nothing'}")
        self.status, self.retry_after = status, retry_after


class ClientCredentialsTokens:
    """An `AccessTokenProviderBase` for the SDK: `configuration`, `get_access_token`, `get_token_credential`."""

    def __init__(self, configuration: AgentAuthConfiguration):
        self._configuration = configuration
        self.token_url = configuration.provider_settings["TOKENURL"]
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.fetches = 0  # how many tokens were fetched (status, tests)

    @property
    def configuration(self) -> AgentAuthConfiguration:
        return self._configuration

    async def get_access_token(self, resource_url: str = "", scopes: list[str] | None = None, force_refresh: bool = False) -> str:
        with self._lock:
            if not force_refresh and self._token and time.time() < self._expires - EARLY_SECONDS:
                return self._token
        form = {"grant_type": "client_credentials", "client_id": self._configuration.CLIENT_ID or "",
                "client_secret": self._configuration.CLIENT_SECRET or "", "scope": SCOPE}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)) as session:
                async with session.post(self.token_url, data=form) as response:
                    body = await response.json(content_type=None) if response.status == 200 else None
                    status, retry_after = response.status, _seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("token endpoint failed (%s)", type(exc).__name__)
            raise TokenError(0) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            log.error("token endpoint answered %s; check MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD and the tenant", status)
            raise TokenError(status if status != 200 else 502, retry_after)
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        with self._lock:
            self._token, self._expires = token, time.time() + lifetime
            self.fetches += 1
        log.info("bot token fetched, valid for %.0f s", lifetime)
        return token

    def get_token_credential(self):
        raise NotImplementedError("PolicyBot uses bearer tokens for the Bot Connector only")

    async def acquire_token_on_behalf_of(self, scopes: list[str], user_assertion: str) -> str:
        raise NotImplementedError("PolicyBot does not act on behalf of users")


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def connection_manager(app_id: str, app_password: str, tenant_id: str | None, token_url: str) -> ConnectionManager:
    """The SDK's connection manager with this provider as its one service connection."""
    configuration = AgentAuthConfiguration(client_id=app_id, client_secret=app_password, tenant_id=tenant_id, TOKENURL=token_url)
    return ConnectionManager(provider_factory=ClientCredentialsTokens, connections_configurations={"SERVICE_CONNECTION": configuration})
