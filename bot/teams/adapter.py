"""The Teams adapter: an authenticated activity -> a call to the conversation core -> Adaptive Cards. Translation only.

`decide` runs before the Bot Connector hears back (in a worker thread; durable: the core's `receive` claims the
message and records a concern, votes and acknowledgements are written). What to say is worked out and sent
afterwards by `respond`, in a turn of the SDK's adapter. Private replies (a concern's guidance, a school
picker, notices, admin output) go to the person's personal chat with the bot when they wrote in a channel:
Teams has no message only one person in a channel can see. Logs carry ids, counts and timings only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from microsoft_agents.hosting.core import TurnContext

from bot import messages
from bot.core.answer import Reply
from bot.core.conversation import Conversation, Handoff, Message, Turn
from bot.escalation.alert import build_alert
from bot.escalation.store import Escalation, EscalationNotFound
from bot.teams import cards
from bot.teams.alerts import TeamsAlertChannel, raised_by, where
from bot.teams.connector import Connector
from bot.teams.incoming import Incoming, field as value_field
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

ADMIN_WORDS = ("status", "gaps", "reindex")


@dataclass(frozen=True)
class Plan:
    """What `decide` settled and `respond` sends: replies ready now, then a core turn's reply, or an alert to redraw."""

    replies: tuple[Reply, ...] = ()
    turn: Turn | None = None
    handoff: Handoff | None = None
    alert: Escalation | None = None
    reindex: bool = False
    question: str = ""  # the question, for an answer's Ask a person and Report buttons
    school: str = ""  # the school a hand-off is for


class TeamsAdapter:
    def __init__(self, core: Conversation, connector: Connector, alerts: TeamsAlertChannel, escalations=None):
        self.core = core
        self.connector = connector
        self.alerts = alerts
        self.escalations = escalations

    # ---------------------------------------------------------------- before the acknowledgement
    def decide(self, inc: Incoming) -> Plan | None:
        if inc.from_bot:
            return None
        if inc.type == "conversationUpdate":
            return Plan((Reply(notice=messages.USAGE_TEAMS),)) if inc.bot_added and inc.personal else None
        if inc.type != "message":
            return None
        if inc.value is not None:
            return self._button(inc)
        if not inc.personal and not inc.mentioned:
            return None  # in a channel the bot answers only when mentioned
        return self._typed(inc)

    def _typed(self, inc: Incoming) -> Plan:
        word = inc.text.strip().lower()
        if word in ADMIN_WORDS:
            if not self.core.is_admin("teams", inc.user):
                log.info("admin command refused command=%s", word)
                return _private(messages.ADMIN_ONLY.format(command=word))
            if word == "reindex":
                return Plan((Reply(notice=messages.REINDEX_STARTED, private=True),), reindex=True)
            return _private(self.core.status() if word == "status" else self.core.gaps())
        if word == "help":
            return _private(messages.USAGE_TEAMS)
        if word == "school":
            return Plan((self._school_choice(inc),))
        if word == "report" or word.startswith(("report ", "report\n")):
            words = inc.text.strip()[len("report"):].strip()
            turn = self.core.report(Message(user=inc.user, text=words, place=inc.place, raw_text=words, event_key=inc.event_key,
                                            reply_to=inc.reply_to, message_ref=inc.activity_id))
            return Plan(turn=turn)
        return Plan(turn=self.core.receive(inc.message()), question=inc.text)

    def _school_choice(self, inc: Incoming) -> Reply:
        options = self.core.router().options(inc.user, "teams")
        if len(options) > 1:
            return Reply(choose_school=self.core.school_names(options), private=True)
        school = options[0] if options else self.core.router().for_message(inc.user, inc.place).school
        return Reply(notice=messages.answers_from([n for _, n in self.core.school_names([school] if school else [])]), private=True)

    def _button(self, inc: Incoming) -> Plan | None:
        data = inc.value or {}
        verb = value_field(data, cards.VERB, 20)
        if verb in (cards.HELPFUL, cards.NOT_HELPFUL):
            reply = self.core.vote(value_field(data, "q", 64), inc.user, verb, value_field(data, "s", 64) or None,
                                   value_field(data, "p", 64) or None, value_field(data, "c", 32) or None)
            return Plan((reply,))
        if verb == cards.ASK_PERSON:
            school = value_field(data, "s", 64)
            outcome = self.core.ask_person(school, value_field(data, "t"), value_field(data, "q", 64), "teams")
            return Plan(handoff=outcome, school=school) if isinstance(outcome, Handoff) else Plan((outcome,))
        if verb == cards.REPORT:
            words, question = value_field(data, "t"), value_field(data, "q", 64)
            key = f"teams:report:{question}:{inc.user}" if question else inc.event_key  # one report per answer and person, however often pressed
            turn = self.core.report(Message(user=inc.user, text=words, place=inc.place, raw_text=words, event_key=key, reply_to=inc.reply_to),
                                    value_field(data, "s", 64) or None)
            return Plan(turn=turn)
        if verb == cards.SCHOOL:
            held = value_field(data, "t")
            reply = self.core.choose_school(inc.user, value_field(data, "s", 64), inc.place, held)
            if not reply.held_question:
                return Plan((reply,))
            turn = self.core.receive(inc.message(text=held))
            return Plan((reply,), turn=turn, question=held)
        if verb in (cards.ACKNOWLEDGE, cards.CLOSE) and self.escalations is not None:
            escalation_id = value_field(data, "e", 64)
            press = self.escalations.acknowledge if verb == cards.ACKNOWLEDGE else self.escalations.close_escalation
            try:
                record = press(escalation_id, inc.user, in_channel=inc.conversation.partition(";messageid=")[0])
            except EscalationNotFound:
                log.warning("escalation button refused: an unknown id, or pressed outside the alert's channels")
                return None
            return Plan(alert=record)
        log.info("ignored card submit verb=%s", verb[:20])
        return None

    # ---------------------------------------------------------------- after the acknowledgement
    async def respond(self, context: TurnContext, inc: Incoming, plan: Plan, pool) -> None:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        turn = plan.turn
        delivered = False
        try:
            for reply in plan.replies:
                await self.send(context, inc, reply)
            if plan.handoff is not None:
                await self.send(context, inc, await self._hand_off(inc, plan.handoff, plan.school))
            if plan.alert is not None:
                await self._redraw(context, inc, plan.alert)
            if plan.reindex:
                await self.send(context, inc, Reply(notice=await loop.run_in_executor(pool, self._reindex), private=True))
            if turn is not None and turn.kind != "duplicate":
                reply = await loop.run_in_executor(pool, self.core.reply, turn)
                if reply is not None:
                    await self.send(context, inc, reply, plan.question)
            delivered = True
        except Exception:
            log.exception("failed to answer conversation=%s", inc.conversation[:60])
            try:
                await self.send(context, inc, Reply(notice=messages.SOMETHING_WENT_WRONG, private=True))
                delivered = turn is not None and turn.kind != "concern"
            except Exception:
                log.exception("could not tell the user about the failure")
        finally:
            if turn is not None and turn.kind != "duplicate":
                await loop.run_in_executor(pool, self.core.done, turn, delivered)
        log.info("handled personal=%s turn=%s ms=%.0f", inc.personal, turn.kind if turn else "-", (time.perf_counter() - started) * 1000)

    async def send(self, context: TurnContext, inc: Incoming, reply: Reply, question: str = "") -> None:
        activity = cards.reply_activity(reply, question, inc.files)
        if (reply.private or reply.escalated is not None) and not inc.personal:
            await self.connector.to_person(inc.service_url, inc.user_ref, inc.tenant, activity)  # never in the channel
        else:
            await context.send_activity(activity)

    async def _hand_off(self, inc: Incoming, handoff: Handoff, school: str) -> Reply:
        text = messages.asked_a_person(inc.name or inc.user, handoff.school_name, handoff.question, handoff.question_id)
        try:
            await self.connector.new_thread(inc.service_url, handoff.channel, inc.tenant, cards.notice(text))
        except Exception as exc:
            log.warning("ask-a-person post failed error=%s", type(exc).__name__)
            meta = self.core.catalogue.schools.get(school)
            return Reply(notice=messages.no_policy_owner(meta.ask if meta else "your line manager"), private=True)
        return Reply(notice=messages.handed_to_person(self.alerts.describe(handoff.channel)), private=True)

    async def _redraw(self, context: TurnContext, inc: Incoming, record: Escalation) -> None:
        """Redraw the alert a button was pressed on (acknowledged, closed); the record is already saved."""
        if not inc.reply_to_id:
            return
        channel = inc.conversation.partition(";messageid=")[0]
        resent = channel == record.fallback_channel and inc.reply_to_id == record.fallback_ts
        activity = cards.alert_activity(build_alert(record, resent=resent), raised_by(record), where(record), self.alerts.names.snapshot())
        activity.id = inc.reply_to_id
        try:
            await context.update_activity(activity)
        except Exception as exc:  # a stale card is only cosmetic
            log.warning("escalation id=%s: could not update the alert card (%s)", record.id, type(exc).__name__)

    def _reindex(self) -> str:
        try:
            return self.core.reindex()
        except PolicyBotError as exc:
            return messages.REINDEX_FAILED.format(error=exc)
        except Exception as exc:
            log.exception("reindex failed")
            return messages.REINDEX_FAILED.format(error=type(exc).__name__)

    # ---------------------------------------------------------------- after a restart
    async def notify(self, reply_to: dict, reply: Reply) -> bool:
        """Tell a member of staff privately about their concern (its reply never reached them)."""
        service_url, user = reply_to.get("serviceUrl"), reply_to.get("user")
        if not isinstance(service_url, str) or not isinstance(user, str) or not service_url or not user:
            return False
        tenant = reply_to.get("tenant") if isinstance(reply_to.get("tenant"), str) else None
        activity = cards.reply_activity(reply)
        conversation = reply_to.get("conversation")
        if reply_to.get("personal") and isinstance(conversation, str) and conversation:
            await self.connector.send(service_url, conversation, activity)
        else:
            await self.connector.to_person(service_url, user, tenant, activity)
        return True


def _private(text: str) -> Plan:
    return Plan((Reply(notice=text, private=True),))

