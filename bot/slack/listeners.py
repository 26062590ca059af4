"""The Bolt app and its listeners: each Slack event, command and button as a call to the adapter, with every field checked.

A signed event whose fields have the wrong types is acknowledged and ignored
with one log line; nothing a request carries is trusted to be a string, a dict
or short.
"""

from __future__ import annotations

import logging
import re

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot import messages
from bot.core.conversation import Conversation, Handoff, Message
from bot.core.schools import Place
from bot.core.text import safe_text
from bot.escalation.alert import build_alert
from bot.escalation.store import EscalationNotFound
from bot.settings import Settings
from bot.slack import blocks
from bot.slack.app import Incoming, SlackAdapter, make_client, question_text, text_of, value, without_bot
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

ADMIN_WORDS = ("status", "reindex", "gaps")


def _str(data, key: str) -> str:
    item = data.get(key) if isinstance(data, dict) else None
    return item if isinstance(item, str) else ""


def create_app(settings: Settings, core: Conversation, client: WebClient | None = None, alerts=None, **app_options) -> App:
    """The Bolt app over the conversation core. `client` defaults to a WebClient for SLACK_BOT_TOKEN at SLACK_API_URL;
    `alerts`: the escalation store, for the alerts' Acknowledge and Close buttons."""
    client = client or make_client(settings)
    for handler in (ServerErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=2)):
        if not any(type(h) is type(handler) for h in client.retry_handlers):
            client.retry_handlers.append(handler)  # answers only: alerts go through bot/slack/alerts.py, which never retries blind
    adapter = SlackAdapter(settings, core, client)
    app = App(client=client, signing_secret=settings.slack.signing_secret or "", name="policybot", process_before_response=True,
              **app_options)
    app.adapter = adapter  # for tests and the serve command
    register(app, adapter, alerts)
    return app


def register(app: App, adapter: SlackAdapter, alerts=None) -> None:
    core = adapter.core

    @app.event("message")
    def on_message(event: dict, body: dict, context) -> None:
        subtype = event.get("subtype")
        if event.get("bot_id") or subtype == "bot_message" or not _str(event, "user") or event.get("user") == context.bot_user_id:
            return  # our own and other bots' messages; message_changed/deleted carry no top-level user
        if event.get("channel_type") != "im":
            return  # in channels the bot answers only when mentioned
        if subtype not in (None, "file_share", "thread_broadcast"):
            log.info("ignored message subtype=%s", str(subtype)[:40])
            return
        _handle(adapter, _incoming("dm", event, body, context))

    @app.event("app_mention")
    def on_mention(event: dict, body: dict, context) -> None:
        if event.get("bot_id") or event.get("subtype") == "bot_message" or event.get("edited") or not _str(event, "user"):
            return  # an edit re-sends the mention; the original was already answered
        _handle(adapter, _incoming("mention", event, body, context))

    @app.event("app_home_opened")
    def on_home(event: dict, client: WebClient) -> None:
        user = _str(event, "user")
        if event.get("tab") not in (None, "home") or not user:
            return
        choice = core.router().for_message(user, Place("slack", private=True))
        ids = [choice.school] if choice.school else list(choice.options)
        client.views_publish(user_id=user, view=blocks.home_view([name for _, name in core.school_names(ids)]))

    @app.command("/policy")
    def on_command(ack, command: dict, respond, context) -> None:
        text = safe_text(_str(command, "text")).strip()
        word = text.lower()
        user = _str(command, "user_id")
        if word in ADMIN_WORDS:
            if not core.is_admin("slack", user):
                log.info("admin command refused command=%s", word)
                ack(text=messages.ADMIN_ONLY.format(command=f"/policy {word}"))
                return
            if word == "status":
                ack(text=blocks.neutralise(core.status()))
                return
            if word == "gaps":
                ack(text=blocks.neutralise(core.gaps()))
                return
            ack(text=messages.REINDEX_STARTED)
            adapter._pool.submit(_reindex, adapter, respond)
            return
        if not text or word == "help":
            ack(text=messages.USAGE_SLACK)
            return
        inc = Incoming(kind="command", team=_str(command, "team_id"), channel=_str(command, "channel_id"), user=user,
                       text=question_text(text, context.bot_user_id), raw_text=without_bot(text, context.bot_user_id), respond=respond,
                       response_url=_str(command, "response_url"), ts=f"cmd.{_str(command, 'trigger_id')}" if _str(command, "trigger_id") else None)
        if word.startswith("report"):
            words = text[len("report"):].strip()
            turn = core.report(Message(user=user, text=words, place=Place("slack", inc.channel, inc.team, private=True), raw_text=words,
                                       event_key=f"{inc.team}:report:{_str(command, 'trigger_id')}", reply_to=inc.message().reply_to))
            ack(text=messages.WORKING)
            adapter.answer_later(inc, turn)
            return
        turn = adapter.receive(inc)
        ack(text=messages.WORKING)
        adapter.answer_later(inc, turn)

    @app.action(blocks.HELPFUL)
    @app.action(blocks.NOT_HELPFUL)
    def on_vote(ack, action: dict, body: dict, respond) -> None:
        ack()
        data = value(action)
        vote = "helpful" if action.get("action_id") == blocks.HELPFUL else "not_helpful"
        reply = core.vote(text_of(data, "q", 64), _str(body.get("user") or {}, "id"), vote, text_of(data, "s", 64) or None,
                          text_of(data, "p", 64) or None, text_of(data, "c", 32) or None)
        respond(text=reply.notice, response_type="ephemeral", replace_original=False)

    @app.action(blocks.ASK_PERSON)
    def on_ask_person(ack, action: dict, body: dict, respond) -> None:
        ack()
        data = value(action)
        outcome = core.ask_person(text_of(data, "s", 64), text_of(data, "t"), text_of(data, "q", 64), "slack")
        if isinstance(outcome, Handoff):
            try:
                respond(text=adapter.hand_off(outcome, _str(body.get("user") or {}, "id")), response_type="ephemeral", replace_original=False)
            except Exception as exc:
                log.warning("ask-a-person post failed error=%s", type(exc).__name__)
                meta = core.catalogue.schools.get(text_of(data, "s", 64))
                respond(text=messages.no_policy_owner(meta.ask if meta else "your line manager"), response_type="ephemeral", replace_original=False)
            return
        respond(text=blocks.neutralise(outcome.notice), response_type="ephemeral", replace_original=False)

    @app.action(blocks.REPORT)
    def on_report(ack, action: dict, body: dict, respond) -> None:
        ack()
        data = value(action)
        user = _str(body.get("user") or {}, "id")
        channel = _str(body.get("channel") or {}, "id")
        words = text_of(data, "t")
        question = text_of(data, "q", 64)
        inc = Incoming(kind="command", team=_str(body.get("team") or {}, "id"), channel=channel, user=user, text=words, respond=respond,
                       response_url=_str(body, "response_url"))
        turn = core.report(Message(user=user, text=words, place=Place("slack", channel, inc.team, private=True), raw_text=words,
                                   event_key=f"{inc.team}:report:{question or channel}:{user}", reply_to=inc.message().reply_to),
                           text_of(data, "s", 64) or None)
        adapter.answer_later(inc, turn)

    @app.action(blocks.REPORT_FROM_HOME)
    def on_report_from_home(ack, body: dict, client: WebClient) -> None:
        ack()
        trigger = _str(body, "trigger_id")
        if trigger:
            client.views_open(trigger_id=trigger, view=blocks.report_modal())

    @app.view(blocks.REPORT_SUBMIT)
    def on_report_submitted(ack, body: dict, view: dict, client: WebClient) -> None:
        state = ((view.get("state") or {}).get("values") or {}).get("concern") or {}
        words = safe_text(_str(state.get("words") or {}, "value")).strip()
        user = _str(body.get("user") or {}, "id")
        if not words:
            ack(response_action="errors", errors={"concern": messages.REPORT_NOTHING_TO_SEND})
            return
        opened = client.conversations_open(users=user)
        channel = (opened.get("channel") or {}).get("id", "")
        inc = Incoming(kind="dm", team=_str(body.get("team") or {}, "id"), channel=channel, user=user, text=words)
        turn = core.report(Message(user=user, text=words, place=Place("slack", channel, inc.team, private=True), raw_text=words,
                                   event_key=f"{inc.team}:report:{_str(view, 'id')}", reply_to=inc.message().reply_to))
        ack()
        adapter.answer_later(inc, turn)

    @app.action(re.compile(f"^{blocks.CHOOSE_SCHOOL}:"))
    def on_choose_school(ack, action: dict, body: dict, respond) -> None:
        ack()
        data = value(action)
        user = _str(body.get("user") or {}, "id")
        school = text_of(data, "s", 64)
        pending = data.get("p") if isinstance(data.get("p"), dict) else {}
        held = text_of(pending, "t", 900)
        reply = core.choose_school(user, school, Place("slack", private=True), held)
        respond(text=blocks.neutralise(reply.notice), replace_original=True)
        if not reply.held_question:
            return
        kind = text_of(pending, "k", 10) if text_of(pending, "k", 10) in ("dm", "mention", "command") else "dm"
        inc = Incoming(kind=kind, team=_str(body.get("team") or {}, "id"), channel=text_of(pending, "c", 40), user=user,
                       text=held, raw_text=held, thread_ts=(text_of(pending, "ts", 40) or None) if kind != "dm" else None,
                       respond=respond if kind == "command" else None)
        adapter.answer_later(inc, adapter.receive(inc))

    if alerts is not None:
        register_alert_buttons(app, alerts)


def register_alert_buttons(app: App, alerts) -> None:
    """An alert's Acknowledge and Close: the store records who and when (its audit trail), the alert is redrawn."""

    @app.action(blocks.ACK_ACTION)
    @app.action(blocks.CLOSE_ACTION)
    def on_alert_button(ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        user = _str(body.get("user") or {}, "id") or "unknown"
        escalation_id = _str(action, "value")[:64]
        channel = _str(body.get("channel") or {}, "id") or _str(body.get("container") or {}, "channel_id")
        press = alerts.acknowledge if action.get("action_id") == blocks.ACK_ACTION else alerts.close_escalation
        try:
            record = press(escalation_id, user, in_channel=channel)
        except EscalationNotFound:
            log.warning("escalation button refused: an unknown id, or pressed outside the alert's channels")
            return
        ts = _str(body.get("message") or {}, "ts") or _str(body.get("container") or {}, "message_ts")
        if channel and ts:
            resent = channel == record.fallback_channel and ts == record.fallback_ts
            text, content = blocks.alert_blocks(build_alert(record, resent=resent))
            try:
                client.chat_update(channel=channel, ts=ts, text=text, blocks=content)
            except Exception as exc:  # the record is already saved; a stale message is only cosmetic
                log.warning("escalation id=%s: could not update the alert message (%s)", record.id, type(exc).__name__)


def _handle(adapter: SlackAdapter, inc: Incoming) -> None:
    """Durable now (before the ack); the answer follows on the reply pool."""
    turn = adapter.receive(inc)
    adapter.answer_later(inc, turn)


def _reindex(adapter: SlackAdapter, respond) -> None:
    try:
        result = adapter.reindex()
    except PolicyBotError as exc:
        result = messages.REINDEX_FAILED.format(error=exc)
    except Exception as exc:
        log.exception("reindex failed")
        result = messages.REINDEX_FAILED.format(error=type(exc).__name__)
    respond(text=blocks.neutralise(result), response_type="ephemeral")


def _incoming(kind: str, event: dict, body: dict, context) -> Incoming:
    raw = _str(event, "text")
    ts = _str(event, "ts") or None
    thread = _str(event, "thread_ts") or (ts if kind == "mention" else None)
    files = event.get("files")
    return Incoming(kind=kind, team=_str(body, "team_id") or context.team_id or "", channel=_str(event, "channel"),
                    user=_str(event, "user"), text=question_text(raw, context.bot_user_id), raw_text=without_bot(raw, context.bot_user_id),
                    ts=ts, thread_ts=thread, files=bool(files and isinstance(files, list)) or event.get("subtype") == "file_share")
