"""One authenticated Teams activity as the facts the adapter needs, and as the core's `Message`.

Nothing an activity carries is trusted to be a string, a dict or short: every field is checked here once.
Users are "teams:<Entra object id>"; a message's key is "teams:<conversation id>:<activity id>", which the
Bot Connector's redeliveries share.
"""

from __future__ import annotations

from dataclasses import dataclass

from microsoft_agents.activity import Activity

from bot.core.conversation import Message
from bot.core.schools import Place
from bot.core.text import safe_text
from bot.teams.auth import tenant_of
from bot.teams.text import question_text, raw_text

FORMATTING = ("text/html",)  # Teams attaches the formatted copy of a message's own text


@dataclass(frozen=True)
class Incoming:
    type: str
    activity_id: str
    conversation: str
    service_url: str
    tenant: str | None
    team: str | None
    user: str  # "teams:<Entra object id>" (the 29: id when Teams gives no object id)
    user_ref: str  # the 29: id, to reach them in a personal chat
    aad_object_id: str | None
    name: str
    personal: bool
    mentioned: bool  # the bot is @mentioned
    from_bot: bool
    text: str = ""
    raw_text: str = ""
    files: bool = False
    value: dict | None = None  # an Adaptive Card's Action.Submit data
    reply_to_id: str | None = None  # a button's card (the message it was pressed on)
    bot_added: bool = False  # a conversationUpdate adding the bot

    @property
    def event_key(self) -> str:
        return f"teams:{self.conversation}:{self.activity_id}"

    @property
    def place(self) -> Place:
        return Place("teams", channel=self.conversation, team=self.team, tenant=self.tenant, private=self.personal)

    @property
    def reply_to(self) -> dict:
        """How to reach the writer later, privately: kept with a concern until they are told."""
        return {"platform": "teams", "serviceUrl": self.service_url, "conversation": self.conversation, "activity": self.activity_id,
                "user": self.user_ref, "aadObjectId": self.aad_object_id, "tenant": self.tenant, "personal": self.personal,
                "name": self.name}

    def message(self, text: str | None = None, event_key: str | None = None) -> Message:
        text = self.text if text is None else text
        return Message(user=self.user, text=text, place=self.place, raw_text=self.raw_text if text == self.text else text,
                       event_key=event_key or self.event_key, reply_to=self.reply_to, message_ref=self.activity_id, files=self.files)


def incoming(activity: Activity) -> Incoming:
    sender = activity.from_property
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    team = data.get("team") if isinstance(data.get("team"), dict) else {}
    conversation = activity.conversation
    bot_id = activity.recipient.id if activity.recipient else None
    mentions = tuple(_str(getattr(m, "text", None)) or f"<at>{_str(getattr(getattr(m, 'mentioned', None), 'name', None))}</at>"
                     for m in _mentions(activity) if getattr(getattr(m, "mentioned", None), "id", None) == bot_id and bot_id)
    text = _str(activity.text) if activity.type == "message" else ""
    aad = _str(getattr(sender, "aad_object_id", None)) or None
    user_ref = _str(getattr(sender, "id", None))
    added = [_str(getattr(m, "id", None)) for m in activity.members_added or []]
    return Incoming(
        type=_str(activity.type), activity_id=_str(activity.id), conversation=_str(conversation.id if conversation else ""),
        service_url=_str(activity.service_url), tenant=tenant_of(activity), team=_str(team.get("id")) or None,
        user=f"teams:{aad or user_ref}", user_ref=user_ref, aad_object_id=aad, name=safe_text(_str(getattr(sender, "name", None)))[:200],
        personal=_str(getattr(conversation, "conversation_type", None)) == "personal",
        mentioned=bool(mentions), from_bot=_str(getattr(sender, "role", None)) == "bot" or (bool(bot_id) and user_ref == bot_id),
        text=question_text(text, mentions), raw_text=raw_text(text, mentions),
        files=any(_str(getattr(a, "content_type", None)) not in FORMATTING for a in activity.attachments or []),
        value=activity.value if isinstance(activity.value, dict) else None, reply_to_id=_str(activity.reply_to_id) or None,
        bot_added=bool(bot_id) and bot_id in added,
    )


def _mentions(activity: Activity) -> list:
    try:
        return activity.get_mentions()
    except Exception:  # a malformed mention entity is only text
        return []


def _str(value) -> str:
    return value if isinstance(value, str) else ""


def field(data: dict | None, key: str, limit: int = 1900) -> str:
    """A card value's field as clean text ("" when it is not a string or number)."""
    raw = (data or {}).get(key)
    return safe_text(raw)[:limit] if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else ""
