"""The Slack adapter: Slack event -> `Question` -> the same `Answerer` as `policybot ask` -> Slack message.

Listeners acknowledge at once (Bolt acks Events API requests before running the listener, and
slash commands / buttons call `ack()` first) and do the work on Bolt's listener thread pool.
Each message is answered once: its `team:channel:ts` is claimed in SQLite before answering, so
Slack's retries (`X-Slack-Retry-Num`) and restarts on the same database do not answer it twice.

Logs carry ids, counts and timings only, never what staff typed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot import slack_blocks as blocks
from bot import slack_messages as say
from bot.answer import Question
from bot.settings import Settings
from bot.slack_state import SlackState
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_SPECIAL = re.compile(r"<!(?:channel|here|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]+\|?([^>]*)>")


def question_text(text: str, bot_user_id: str | None) -> str:
    """Slack mrkdwn -> the words the staff member typed (no bot mention, no ids, no broadcast)."""
    text = text or ""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = _USER_MENTION.sub("a colleague", text)
    text = _SPECIAL.sub(" ", text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _CHANNEL.sub(lambda m: m.group(1) or "a channel", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return re.sub(r"[ \t]+", " ", text).strip()


@dataclass(frozen=True)
class Incoming:
    """One question as it arrived from Slack (the adapter's only view of the platform)."""

    kind: str  # "dm" | "mention" | "command"
    team: str
    channel: str
    user: str
    text: str  # cleaned question text
    raw_text: str = ""  # as typed, for the safeguarding record only
    ts: str | None = None  # the staff member's message
    thread_ts: str | None = None
    files: bool = False
    respond: Callable[..., Any] | None = None  # slash commands and buttons: Slack's response_url
    trigger_id: str | None = None

    @property
    def key(self) -> str | None:
        return f"{self.team}:{self.channel}:{self.ts}" if self.ts else None


class SlackAdapter:
    def __init__(self, settings: Settings, answerer, client: WebClient, state: SlackState,
                 escalations=None, deliverer=None, reindex: Callable[[], str] | None = None):
        self.settings = settings
        self.answerer = answerer
        self.client = client
        self.state = state
        self.escalations = escalations
        self.deliverer = deliverer
        self.reindex = reindex or self._reindex
        self._reindex_lock = threading.Lock()

    # ---------------------------------------------------------------- which school
    def schools(self) -> dict[str, str]:
        return {sid: meta.name for sid, meta in self.answerer.catalogue.schools.items()}

    def user_options(self, user: str) -> list[str]:
        mapped = self.settings.slack.user_schools.get(user)
        if not mapped:
            return []
        options = [mapped] if isinstance(mapped, str) else list(mapped)
        return [s for s in dict.fromkeys(options) if s in self.answerer.catalogue.schools]

    def school_for(self, user: str, channel: str, in_channel: bool) -> str | list[str] | None:
        """A school id, a list of ids when the user must choose, or None when nothing is configured."""
        slack = self.settings.slack
        if in_channel and channel in slack.channel_schools:
            return slack.channel_schools[channel]
        options = self.user_options(user)
        if len(options) == 1:
            return options[0]
        if options:
            chosen = self.state.chosen_school(user)
            return chosen if chosen in options else options
        return self.settings.school or slack.default_school

    # ---------------------------------------------------------------- replying
    def reply(self, inc: Incoming, text: str, blocks_: list[dict] | None = None, private: bool = False) -> None:
        if inc.respond is not None:
            inc.respond(text=text, blocks=blocks_, response_type="ephemeral", replace_original=False)
        elif private and inc.kind == "mention":
            self.client.chat_postEphemeral(channel=inc.channel, user=inc.user, text=text, blocks=blocks_,
                                           thread_ts=inc.thread_ts)
        else:
            self.client.chat_postMessage(channel=inc.channel, text=text, blocks=blocks_, thread_ts=inc.thread_ts,
                                         unfurl_links=False, unfurl_media=False)

    def _react(self, inc: Incoming, add: bool) -> None:
        if not inc.ts or inc.respond is not None:
            return
        try:
            if add:
                self.client.reactions_add(channel=inc.channel, timestamp=inc.ts, name=say.WORKING_REACTION)
            else:
                self.client.reactions_remove(channel=inc.channel, timestamp=inc.ts, name=say.WORKING_REACTION)
        except SlackApiError as exc:  # a missing reaction never stops an answer
            log.info("reaction %s failed channel=%s error=%s", "add" if add else "remove", inc.channel, exc.response.get("error"))

    # ---------------------------------------------------------------- the question pipeline
    def handle(self, inc: Incoming) -> None:
        key = inc.key
        if key and not self.state.claim(key):
            log.info("duplicate delivery ignored key=%s", key)
            return
        started = time.perf_counter()
        self._react(inc, True)
        try:
            self._handle(inc)
        except Exception:
            log.exception("failed to answer kind=%s channel=%s user=%s ts=%s", inc.kind, inc.channel, inc.user, inc.ts)
            try:
                self.reply(inc, say.SOMETHING_WENT_WRONG, private=True)
            except Exception:
                log.exception("could not tell the user about the failure channel=%s", inc.channel)
                if key:
                    self.state.release(key)  # nothing reached Slack: a redelivery may try again
                return
        finally:
            self._react(inc, False)
        if key:
            self.state.finish(key)
        log.info("handled kind=%s channel=%s user=%s ms=%.0f", inc.kind, inc.channel, inc.user, (time.perf_counter() - started) * 1000)

    def _handle(self, inc: Incoming) -> None:
        if inc.files and not inc.text:
            self.reply(inc, say.FILES_NOT_READ)
            return
        school = self.school_for(inc.user, inc.channel, in_channel=inc.kind != "dm")
        if school is None:
            self.reply(inc, say.NO_SCHOOL, private=True)
            return
        if isinstance(school, list):
            self.ask_which_school(inc, school)
            return
        self.answer(inc, school)

    def ask_which_school(self, inc: Incoming, options: list[str]) -> None:
        names = {s: self.answerer.catalogue.schools[s].name for s in options}
        pending = {"t": inc.text[:900], "c": inc.channel, "ts": inc.thread_ts or "", "k": inc.kind}
        picker = blocks.school_picker(names, pending)
        self.reply(inc, say.CHOOSE_SCHOOL, picker, private=True)

    def answer(self, inc: Incoming, school: str) -> None:
        question = Question(text=inc.text, school=school, asker=inc.user, channel=inc.channel)
        try:
            answer = self.answerer.answer(question)
        except PolicyBotError as exc:  # empty, too long, unknown school: the message says what to do
            log.info("question refused kind=%s channel=%s reason=%s", inc.kind, inc.channel, type(exc).__name__)
            self.reply(inc, blocks.neutralise(str(exc)))
            return
        if answer.escalate:
            self.escalate(inc, answer)
            return
        content = blocks.answer_blocks(answer, inc.text)
        if inc.files:
            content.insert(-1, {"type": "context", "elements": [{"type": "mrkdwn", "text": say.FILES_IGNORED_NOTE}]})
        self.reply(inc, blocks.answer_text(answer), content)
        log.info("answered question_id=%s school=%s answered=%s citations=%d", answer.question_id, school, answer.answered, answer.quoted)

    # ---------------------------------------------------------------- safeguarding
    def escalate(self, inc: Incoming, answer) -> None:
        """Record and hand the concern to delivery, then guide the staff member privately (never in the thread)."""
        note = say.ESCALATION_NOT_CONFIGURED
        if self.escalations is not None:
            try:
                record_id = self._record_escalation(inc, answer)
                if self.deliverer is not None:
                    self.deliverer.deliver_soon(record_id)
                    note = say.ESCALATION_PRIVATE_NOTE
                else:
                    log.error("escalation recorded without a deliverer record_id=%s", record_id)
            except Exception:
                log.exception("escalation could not be recorded channel=%s ts=%s", inc.channel, inc.ts)
        else:
            log.error("escalation with no escalation store configured channel=%s ts=%s", inc.channel, inc.ts)
        self.reply(inc, blocks.neutralise(answer.answer), blocks.private_text_blocks(answer.answer, note), private=True)
        log.info("escalated question_id=%s school=%s route=%s", answer.question_id, answer.school, answer.route)

    def _record_escalation(self, inc: Incoming, answer):
        from bot.escalation_store import EscalationRequest

        permalink = None
        if inc.ts:
            try:
                permalink = self.client.chat_getPermalink(channel=inc.channel, message_ts=inc.ts).get("permalink")
            except SlackApiError as exc:
                log.info("no permalink channel=%s error=%s", inc.channel, exc.response.get("error"))
        request = EscalationRequest(
            dedupe_key=f"{inc.team}:{inc.channel}:{inc.ts or inc.trigger_id}",
            school=answer.school,
            route=answer.route,
            categories=tuple(answer.categories),
            reasons=tuple(answer.reasons),
            about_head=answer.about_head,
            raised_by=inc.user,
            channel=inc.channel,
            message_ts=inc.ts,
            permalink=permalink,
            text=inc.raw_text or inc.text,
        )
        record, created = self.escalations.record(request)
        log.info("escalation record_id=%s created=%s", record.id, created)
        return record.id

    # ---------------------------------------------------------------- admin
    def status_text(self) -> str:
        import datetime as dt

        lines = []
        counts: dict[tuple[str, str], int] = {}
        try:
            manifest = self.answerer.index.current().manifest
            counts = {(d.school, d.policy): d.chunks for d in manifest.documents}
            lines.append(f"*Index*: built {manifest.built_at} with {manifest.model}")
        except PolicyBotError as exc:
            lines.append(f"*Index*: {exc}")
        today = self.answerer.today() if callable(getattr(self.answerer, "today", None)) else dt.date.today()
        for school_id, school in sorted(self.answerer.catalogue.schools.items()):
            lines.append(f"*{school_id}*: {school.name}")
            for policy in school.policies:
                due = policy.next_review.isoformat() if policy.next_review else "no review date"
                flag = " :warning: OVERDUE" if policy.is_overdue(today) else ""
                lines.append(f"  • {policy.title}: {counts.get((school_id, policy.id), 0)} clauses, next review {due}{flag}")
        if self.deliverer is not None and hasattr(self.deliverer, "health"):
            try:
                lines.append(f"*Escalation delivery*: {self.deliverer.health()}")
            except Exception:
                log.exception("escalation health check failed")
                lines.append("*Escalation delivery*: health check failed (see logs)")
        else:
            lines.append("*Escalation delivery*: not configured")
        c = self.state.counts()
        lines.append(f"*Slack*: {c['handled_events']} messages handled; feedback {c['helpful']} helpful, {c['not_helpful']} not helpful")
        return "\n".join(lines)

    def _reindex(self) -> str:
        """The same incremental, validated, atomic publish as `policybot index`."""
        from index import publish

        index = self.answerer.index
        with self._reindex_lock:
            report = publish.publish(self.settings.policies_dir, index.folder, index.embedder, progress=False)
            index.reload()
        return report.summary()


def create_app(settings: Settings, answerer, client: WebClient | None = None, escalations=None, deliverer=None, *,
               state: SlackState | None = None, reindex: Callable[[], str] | None = None, **app_options) -> App:
    """The Bolt app. `client` defaults to a WebClient for SLACK_BOT_TOKEN at SLACK_API_URL."""
    if client is None:
        client = make_client(settings)
    for handler in (ServerErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=2)):
        if not any(type(h) is type(handler) for h in client.retry_handlers):
            client.retry_handlers.append(handler)
    adapter = SlackAdapter(settings, answerer, client, state or SlackState(settings.database), escalations, deliverer, reindex)
    app = App(client=client, signing_secret=settings.slack.signing_secret or "", name="policybot", **app_options)
    app.adapter = adapter  # for tests and the serve command
    register(app, adapter)
    if escalations is not None:
        try:
            from bot.slack_escalations import register_escalation_actions
        except ImportError:
            log.warning("bot.slack_escalations not available: escalation buttons are not registered")
        else:
            register_escalation_actions(app, escalations)
    return app


def make_client(settings: Settings) -> WebClient:
    base_url = settings.slack.api_url or WebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(token=settings.slack.bot_token, base_url=base_url)


def register(app: App, adapter: SlackAdapter) -> None:
    @app.event("message")
    def on_message(event: dict, body: dict, context) -> None:
        subtype = event.get("subtype")
        if event.get("bot_id") or subtype == "bot_message" or event.get("user") in (None, context.bot_user_id):
            return  # our own and other bots' messages; message_changed/deleted carry no top-level user
        if event.get("channel_type") != "im":
            return  # in channels the bot answers only when mentioned
        if subtype not in (None, "file_share", "thread_broadcast"):
            log.info("ignored message subtype=%s channel=%s", subtype, event.get("channel"))
            return
        adapter.handle(_incoming("dm", event, body, context))

    @app.event("app_mention")
    def on_mention(event: dict, body: dict, context) -> None:
        if event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("edited"):
            return  # an edit re-sends the mention; the original was already answered
        adapter.handle(_incoming("mention", event, body, context))

    @app.event("app_home_opened")
    def on_home(event: dict, client: WebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = event["user"]
        school = adapter.school_for(user, "", in_channel=False)
        ids = school if isinstance(school, list) else [school] if school else []
        names = [adapter.answerer.catalogue.schools[s].name for s in ids if s in adapter.answerer.catalogue.schools]
        client.views_publish(user_id=user, view=blocks.home_view(names))

    @app.command("/policy")
    def on_command(ack, command: dict, respond, context) -> None:
        text = (command.get("text") or "").strip()
        word = text.lower()
        user = command.get("user_id", "")
        if word in ("status", "reindex"):
            if user not in adapter.settings.slack.admins:
                log.info("admin command refused command=%s user=%s", word, user)
                ack(text=say.ADMIN_ONLY.format(command=word))
                return
            if word == "status":
                ack(text=adapter.status_text())
                return
            ack(text=say.REINDEX_STARTED)
            try:
                result = adapter.reindex()
            except PolicyBotError as exc:
                result = say.REINDEX_FAILED.format(error=exc)
            except Exception as exc:
                log.exception("reindex failed")
                result = say.REINDEX_FAILED.format(error=type(exc).__name__)
            respond(text=result, response_type="ephemeral")
            return
        if not text or word == "help":
            ack(text=say.USAGE)
            return
        ack(text=say.WORKING)
        adapter.handle(Incoming(kind="command", team=command.get("team_id", ""), channel=command.get("channel_id", ""),
                                user=user, text=question_text(text, context.bot_user_id), raw_text=text,
                                respond=respond, trigger_id=command.get("trigger_id")))

    @app.action(blocks.HELPFUL)
    @app.action(blocks.NOT_HELPFUL)
    def on_vote(ack, action: dict, body: dict, respond) -> None:
        ack()
        value = _value(action)
        vote = "helpful" if action["action_id"] == blocks.HELPFUL else "not_helpful"
        adapter.state.record_vote(str(value.get("q", "")), body["user"]["id"], vote, value.get("s"))
        log.info("feedback question_id=%s vote=%s", value.get("q"), vote)
        respond(text=say.THANKS_FOR_FEEDBACK, response_type="ephemeral", replace_original=False)

    @app.action(blocks.ASK_PERSON)
    def on_ask_person(ack, action: dict, body: dict, respond, client: WebClient) -> None:
        ack()
        value = _value(action)
        school = value.get("s", "")
        meta = adapter.answerer.catalogue.schools.get(school)
        if meta is None:
            return
        channel = adapter.settings.routes(school).policy_owner_channel or next(
            (p.owner_channel for p in meta.policies if getattr(p, "owner_channel", None)), None)
        if not channel:
            respond(text=say.no_policy_owner(meta.ask), response_type="ephemeral", replace_original=False)
            return
        user = body["user"]["id"]
        try:
            client.chat_postMessage(channel=channel, text=say.asked_a_person(user, blocks.neutralise(meta.name),
                                    blocks.neutralise(value.get("t", "")), str(value.get("q", ""))))
        except SlackApiError as exc:
            log.warning("ask-a-person post failed channel=%s error=%s", channel, exc.response.get("error"))
            respond(text=say.no_policy_owner(meta.ask), response_type="ephemeral", replace_original=False)
            return
        log.info("asked a person question_id=%s school=%s", value.get("q"), school)
        respond(text=say.handed_to_person(channel), response_type="ephemeral", replace_original=False)

    @app.action(re.compile(f"^{blocks.CHOOSE_SCHOOL}:"))
    def on_choose_school(ack, action: dict, body: dict, respond, context) -> None:
        ack()
        value = _value(action)
        user = body["user"]["id"]
        school = value.get("s")
        if school not in adapter.user_options(user):
            return
        adapter.state.choose_school(user, school)
        name = adapter.answerer.catalogue.schools[school].name
        respond(text=say.school_chosen(name), replace_original=True)
        pending = value.get("p") if isinstance(value.get("p"), dict) else {}
        text = pending.get("t", "")
        if not text:
            return
        kind = pending.get("k", "dm")
        inc = Incoming(kind=kind, team=(body.get("team") or {}).get("id", ""), channel=pending.get("c", ""), user=user,
                       text=text, raw_text=text, thread_ts=pending.get("ts") or None,
                       respond=respond if kind == "command" else None)
        if kind == "dm":
            inc = replace(inc, thread_ts=None)
        adapter.answer(inc, school)


def _incoming(kind: str, event: dict, body: dict, context) -> Incoming:
    raw = event.get("text") or ""
    ts = event.get("ts")
    thread = event.get("thread_ts") or (ts if kind == "mention" else None)
    return Incoming(kind=kind, team=body.get("team_id") or context.team_id or "", channel=event.get("channel", ""),
                    user=event.get("user", ""), text=question_text(raw, context.bot_user_id), raw_text=question_text_raw(raw, context.bot_user_id),
                    ts=ts, thread_ts=thread, files=bool(event.get("files")) or event.get("subtype") == "file_share")


def question_text_raw(text: str, bot_user_id: str | None) -> str:
    """What the staff member wrote, minus the bot's own mention (kept for the safeguarding record)."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text or "")
    return (text or "").strip()


def _value(action: dict) -> dict:
    return _loads(action.get("value"))


def _loads(raw) -> dict:
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
