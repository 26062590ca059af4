"""Outbound calls to the Bot Connector, through the SDK's own REST client (TeamsConnectorClient).

What the SDK is given on top: a session with a timeout (its default is aiohttp's 300 s), conversation ids kept
whole (it cuts them to 150 characters, and a personal chat's id can be longer), the bot's token from
tokens.py, and no retries anywhere: the caller decides, and an alert is never re-posted without looking first
(bot/escalation/delivery.py). `classify` turns what went wrong into the escalation layer's `DeliveryError`.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from microsoft_agents.activity import Activity, ChannelAccount, ConversationParameters
from microsoft_agents.hosting.core import RestChannelServiceClientFactory
from microsoft_agents.hosting.core.connector.client.connector_client import ConversationsOperations
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.escalation.channel import DeliveryError
from bot.teams.tokens import ClientCredentialsTokens, TokenError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0
MAX_CONVERSATION_ID = 1000
PERMANENT_STATUSES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 413: "too_large"}


class Client(TeamsConnectorClient):
    """The SDK's client, with a timeout and whole conversation ids."""

    def __init__(self, service_url: str, token: str, timeout: float = TIMEOUT_SECONDS):
        base = service_url if service_url.endswith("/") else service_url + "/"
        super().__init__(base, token, session=aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=timeout)))
        self._conversations = ConversationsOperations(self.client, max_conversation_id_length=MAX_CONVERSATION_ID)


class ClientFactory(RestChannelServiceClientFactory):
    """The SDK adapter's factory for the connector client of a turn: ours, with the bot's token."""

    def __init__(self, connections, tokens: ClientCredentialsTokens):
        super().__init__(connections)
        self._tokens = tokens

    async def create_connector_client(self, context, claims_identity, service_url, audience, scopes=None, use_anonymous=False):
        return Client(service_url, await self._tokens.get_access_token(audience, scopes))


class Connector:
    """The proactive calls: a new thread in a channel, a personal chat with someone, a send, an update, members."""

    def __init__(self, app_id: str, tokens: ClientCredentialsTokens, timeout: float = TIMEOUT_SECONDS):
        self.app_id = app_id
        self.tokens = tokens
        self.timeout = timeout

    @property
    def bot(self) -> ChannelAccount:
        return ChannelAccount(id=f"28:{self.app_id}")

    async def client(self, service_url: str) -> Client:
        return Client(service_url, await self.tokens.get_access_token(), self.timeout)

    async def new_thread(self, service_url: str, channel: str, tenant: str | None, activity: Activity) -> tuple[str, str]:
        """Post `activity` as a new thread in a Teams channel: (the thread's conversation id, the activity id)."""
        data = {"channel": {"id": channel}, **({"tenant": {"id": tenant}} if tenant else {})}
        params = ConversationParameters(is_group=True, agent=self.bot, channel_data=data, activity=activity,
                                        **({"tenant_id": tenant} if tenant else {}))
        client = await self.client(service_url)
        try:
            created = await client.conversations.create_conversation(params)
        finally:
            await client.close()
        activity_id = created.activity_id or (created.id or "").rpartition(";messageid=")[2]
        return created.id or f"{channel};messageid={activity_id}", activity_id

    async def to_person(self, service_url: str, user: str, tenant: str | None, activity: Activity) -> str:
        """Send `activity` to the person's personal chat with the bot (created, or found, by the Bot Connector)."""
        data = {"tenant": {"id": tenant}} if tenant else None
        params = ConversationParameters(is_group=False, agent=self.bot, members=[ChannelAccount(id=user)],
                                        **({"tenant_id": tenant, "channel_data": data} if tenant else {}))
        client = await self.client(service_url)
        try:
            conversation = await client.conversations.create_conversation(params)
            sent = await client.conversations.send_to_conversation(conversation.id, activity)
        finally:
            await client.close()
        return sent.id or ""

    async def send(self, service_url: str, conversation: str, activity: Activity) -> str:
        client = await self.client(service_url)
        try:
            return (await client.conversations.send_to_conversation(conversation, activity)).id or ""
        finally:
            await client.close()

    async def update(self, service_url: str, conversation: str, activity_id: str, activity: Activity) -> None:
        client = await self.client(service_url)
        try:
            await client.conversations.update_activity(conversation, activity_id, activity)
        finally:
            await client.close()

    async def member_ids(self, service_url: str, conversation: str, pages: int = 20) -> set[str]:
        """Every member's ids (the 29: id and the Entra object id) of a conversation, such as a channel."""
        client = await self.client(service_url)
        found: set[str] = set()
        try:
            token = None
            for _ in range(pages):
                page = await client.conversations.get_conversation_paged_members(conversation, 500, token)
                for member in page.members or []:
                    found.update(i for i in (member.id, getattr(member, "aad_object_id", None)) if i)
                token = page.continuation_token
                if not token:
                    break
        finally:
            await client.close()
        return found


def classify(exc: BaseException, sending: bool = False) -> DeliveryError:
    """A failed call as a DeliveryError. `sending`: the call posts something, so a failure after the request may
    have gone out (a 5xx, a timeout, a dropped connection) "may have posted"."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, TokenError):  # nothing reached the Bot Connector
        if exc.status in (400, 401, 403):
            return DeliveryError(f"token_{exc.status}", transient=False)
        return DeliveryError(f"token_{exc.status or 'unreachable'}", transient=True, retry_after=exc.retry_after)
    if isinstance(exc, aiohttp.ClientResponseError):
        status = exc.status or 0
        retry_after = _retry_after(exc.headers)
        if status == 429:
            return DeliveryError("throttled", transient=True, retry_after=retry_after if retry_after is not None else 1.0)
        if status >= 500:
            return DeliveryError(f"http_{status}", transient=True, retry_after=retry_after, maybe_posted=sending)
        return DeliveryError(PERMANENT_STATUSES.get(status, f"http_{status}"), transient=False)
    if isinstance(exc, aiohttp.ClientConnectorError):  # the connection was never made: nothing was sent
        return DeliveryError("unreachable", transient=True)
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)):
        return DeliveryError(type(exc).__name__, transient=True, maybe_posted=sending)
    return DeliveryError(type(exc).__name__, transient=True, maybe_posted=sending)


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
