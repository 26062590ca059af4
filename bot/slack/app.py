"""The Slack adapter: Slack event -> `Message` -> the conversation core -> Block Kit. Translation only.

Bolt runs each listener before it acknowledges Slack (`process_before_response`),
so what must survive a crash is durable before Slack hears back: the core's
`receive` claims the event and records a concern in milliseconds after one pass
through the model. The answer itself is worked out and posted afterwards on a
bounded pool of threads. Logs carry ids, counts and timings only.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import messages
from bot.core.answer import Reply
from bot.core.conversation import Conversation, Handoff, Message, Turn
from bot.core.schools import Place
from bot.core.text import safe_text
from bot.settings import Settings
from bot.slack import blocks

log = logging.getLogger(__name__)

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_LEADING_MENTIONS = re.compile(r"^(?:\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s,:;-]*)+")
_SPECIAL = re.compile(r"<!(?:channel|here|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+\|?([^>]*)>")
REPLY_WORKERS = 8


def without_bot(text: str, bot_user_id: str | None) -> str:
    text = safe_text(text)
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return text.strip()


def question_text(text: str, bot_user_id: str | None) -> str:
    """Slack mrkdwn -> the words the staff member typed. A colleague they address at the start is the addressee,
    not the subject: that mention goes; a colleague named later stays as "a colleague"."""
    text = _LEADING_MENTIONS.sub(" ", without_bot(text, bot_user_id))
    text = _USER_MENTION.sub("a colleague", text)
    text = _SPECIAL.sub(" ", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _CHANNEL.sub(lambda m: m.group(1) or "a channel", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]+", " ", text).strip()


@dataclass(frozen=True)
class Incoming:
    """One Slack message: where it came from and how to answer it."""

    kind: str  # "dm" | "mention" | "command"
    team: str
    channel: str
    user: str
    text: str
    raw_text: str = ""
    ts: str | None = None
    thread_ts: str | None = None
    files: bool = False
    respond: object | None = None  # slash commands and buttons: Slack's response_url
    response_url: str | None = None

    def message(self, permalink: str | None = None) -> Message:
        key = f"{self.team}:{self.channel}:{self.ts}" if self.ts else None
        reply_to = {"platform": "slack", "kind": self.kind, "channel": self.channel, "user": self.user, "thread_ts": self.thread_ts,
                    "response_url": self.response_url}
        return Message(user=self.user, text=self.text, place=Place("slack", self.channel, self.team, private=self.kind == "dm"),
                       raw_text=self.raw_text or self.text, event_key=key, reply_to=reply_to, permalink=permalink,
                       message_ref=self.ts, files=self.files)


class SlackAdapter:
    def __init__(self, settings: Settings, core: Conversation, client: WebClient):
        self.settings = settings
        self.core = core
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=REPLY_WORKERS, thread_name_prefix="slack-reply")
        self._reindex_lock = threading.Lock()

    # ---------------------------------------------------------------- a message
    def receive(self, inc: Incoming) -> Turn:
        """Before Slack's ack: durable (the event's claim; a concern's record)."""
        return self.core.receive(inc.message(self._permalink(inc)))

    def answer_later(self, inc: Incoming, turn: Turn) -> None:
        if turn.kind != "duplicate":
            self._pool.submit(self._answer, inc, turn)

    def _answer(self, inc: Incoming, turn: Turn) -> None:
        started = time.perf_counter()
        self._react(inc, True)
        delivered = False
        try:
            reply = self.core.reply(turn)
            if reply is not None:
                self.send(inc, reply)
            delivered = True
        except Exception:
            log.exception("failed to answer kind=%s channel=%s", inc.kind, inc.channel)
            try:
                self.reply_text(inc, messages.SOMETHING_WENT_WRONG, private=True)
                delivered = turn.kind != "concern"
            except Exception:
                log.exception("could not tell the user about the failure channel=%s", inc.channel)
        finally:
            self._react(inc, False)
            self.core.done(turn, delivered)
        log.info("handled kind=%s channel=%s turn=%s ms=%.0f", inc.kind, inc.channel, turn.kind, (time.perf_counter() - started) * 1000)

    def send(self, inc: Incoming, reply: Reply) -> None:
        if reply.answer is not None:
            text, content = blocks.answer_blocks(reply.answer, inc.text)
            if inc.files:
                content.insert(-1, {"type": "context", "elements": [{"type": "mrkdwn", "text": "_" + messages.FILES_IGNORED_NOTE + "_"}]})
            self.post(inc, text, content)
        elif reply.escalated is not None:
            text, content = blocks.escalated_blocks(reply.escalated)
            self.post(inc, text, content, private=True)  # never in the thread
        elif reply.choose_school:
            pending = {"t": inc.text[:900], "c": inc.channel, "ts": inc.thread_ts or "", "k": inc.kind}
            self.post(inc, messages.CHOOSE_SCHOOL, blocks.school_picker(reply.choose_school, pending), private=True)
        else:
            self.reply_text(inc, reply.notice, private=reply.private and inc.kind == "mention")

    def reply_text(self, inc: Incoming, text: str, private: bool = False) -> None:
        self.post(inc, blocks.neutralise(text), [blocks._section(blocks.neutralise(text))], private=private)

    def post(self, inc: Incoming, text: str, content: list[dict] | None, private: bool = False) -> None:
        if inc.respond is not None:
            inc.respond(text=text, blocks=content, response_type="ephemeral", replace_original=False)
        elif private and inc.kind == "mention":
            self.client.chat_postEphemeral(channel=inc.channel, user=inc.user, text=text, blocks=content, thread_ts=inc.thread_ts)
        else:
            self.client.chat_postMessage(channel=inc.channel, text=text, blocks=content, thread_ts=inc.thread_ts,
                                         unfurl_links=False, unfurl_media=False)

    def notify(self, reply_to: dict, reply: Reply) -> bool:
        """Tell a member of staff about their concern after a restart (the reply never reached them)."""
        inc = Incoming(kind=reply_to.get("kind") or "dm", team="", channel=reply_to.get("channel") or "", user=reply_to.get("user") or "",
                       text="", thread_ts=reply_to.get("thread_ts"))
        if not inc.channel or not inc.user:
            return False
        if inc.kind == "command":  # a slash command's response_url expires; a DM reaches them
            opened = self.client.conversations_open(users=inc.user)
            inc = Incoming(kind="dm", team="", channel=(opened.get("channel") or {}).get("id", ""), user=inc.user, text="")
        self.send(inc, reply)
        return True

    def _react(self, inc: Incoming, add: bool) -> None:
        if not inc.ts or inc.respond is not None:
            return
        try:
            if add:
                self.client.reactions_add(channel=inc.channel, timestamp=inc.ts, name=messages.WORKING_REACTION)
            else:
                self.client.reactions_remove(channel=inc.channel, timestamp=inc.ts, name=messages.WORKING_REACTION)
        except SlackApiError as exc:  # a missing reaction never stops an answer
            log.info("reaction %s failed channel=%s error=%s", "add" if add else "remove", inc.channel, exc.response.get("error"))

    def _permalink(self, inc: Incoming) -> str | None:
        return f"https://slack.com/archives/{inc.channel}/p{inc.ts.replace('.', '')}" if inc.ts and inc.channel else None

    # ---------------------------------------------------------------- buttons
    def hand_off(self, handoff: Handoff, user: str) -> str:
        text = messages.asked_a_person(f"<@{user}>" if re.fullmatch(r"[UW][A-Z0-9]+", user) else blocks.neutralise(user),
                                       blocks.neutralise(handoff.school_name), blocks.neutralise(handoff.question),
                                       blocks.neutralise(handoff.question_id))
        self.client.chat_postMessage(channel=handoff.channel, text=text, unfurl_links=False, unfurl_media=False)
        return messages.handed_to_person(f"<#{handoff.channel}>")

    def reindex(self) -> str:
        with self._reindex_lock:
            return self.core.reindex()


def make_client(settings: Settings) -> WebClient:
    base_url = settings.slack.api_url or WebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(token=settings.slack.bot_token, base_url=base_url, timeout=10)


def value(action: dict) -> dict:
    """A button's value as a dict (anything else: empty); every field is escaped before it is echoed."""
    try:
        data = json.loads(action.get("value") or "{}")
    except (TypeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def text_of(data: dict, key: str, limit: int = 1900) -> str:
    raw = data.get(key)
    return safe_text(raw)[:limit] if isinstance(raw, (str, int, float)) else ""

