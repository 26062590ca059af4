"""The conversation core: everything between a platform's event and a platform's message, written once.

An adapter translates a platform event into a `Message`, calls `receive`
before it acknowledges the platform (durable, and fast: one pass through the
model), then `reply` for what to say, renders it, and calls `done` once it is
sent. In between, the core decides which school is asked about, de-duplicates
platform retries, runs the safeguarding gate, records a concern (so a crash
after the acknowledgement loses nothing) and hands it to delivery, answers
questions, and keeps feedback, "ask a person", reports and admin commands.

Logs carry ids, counts and timings: never what anyone wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from bot import messages
from bot.core import admin
from bot.core.answer import NOT_COVERED, Delivery, Escalated, Reply
from bot.core.answering import Answerer, Prepared, Question, QuestionError
from bot.core.schools import Place, SchoolChoice, SchoolRouter
from bot.escalation.routes import Route
from bot.escalation.store import EscalationRequest
from bot.safeguarding.gate import Assessment
from bot.settings import Settings
from index.catalogue import UnknownSchool
from index.errors import PolicyBotError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One message as an adapter hands it over: platform markup removed, the platform's ids kept."""

    user: str  # a platform user id ("U0123", "teams:<Entra object id>", "local")
    text: str  # what they asked: the bot's own mention and a leading addressee removed
    place: Place
    raw_text: str = ""  # as written (minus the bot's mention), for the safeguarding record only
    event_key: str | None = None  # the platform's id for the message: its retries share it
    reply_to: dict | None = None  # how to reach the writer later (kept with a concern until they are told)
    permalink: str | None = None
    message_ref: str | None = None  # the platform's id of the message itself (Slack ts)
    files: bool = False


@dataclass(frozen=True)
class Turn:
    """What `receive` decided; `reply` turns it into what to say."""

    message: Message
    kind: str  # "duplicate" | "notice" | "choose" | "concern" | "question"
    school: str | None = None
    options: tuple[str, ...] = ()
    prepared: Prepared | None = None
    assessment: Assessment | None = None
    escalation_id: str | None = None
    route: Route | None = None
    recorded_at: dt.datetime | None = None
    notice: str = ""
    reported: bool = False


@dataclass(frozen=True)
class Handoff:
    """A question for a person: the adapter posts it to `channel` (each part escaped for its platform), then tells
    the asker it was handed over."""

    platform: str
    channel: str
    school_name: str
    question: str
    question_id: str


class Conversation:
    def __init__(self, settings: Settings, answerer: Answerer, gate, state, escalations=None, deliverer=None,
                 reindex: Callable[[], str] | None = None, now: Callable[[], dt.datetime] | None = None):
        self.settings = settings
        self.answerer = answerer
        self.gate = gate
        self.state = state
        self.escalations = escalations
        self.deliverer = deliverer
        self._reindex = reindex
        self._zone = ZoneInfo(settings.timezone)
        self._now = now or (lambda: dt.datetime.now(dt.timezone.utc))

    # -- schools --------------------------------------------------------------------------------

    @property
    def catalogue(self):
        return self.answerer.catalogue()

    def router(self) -> SchoolRouter:
        return SchoolRouter(self.settings, self.state, set(self.catalogue.schools))

    def school_names(self, schools) -> tuple[tuple[str, str], ...]:
        catalogue = self.catalogue
        return tuple((s, catalogue.schools[s].name) for s in schools if s in catalogue.schools)

    # -- a message ------------------------------------------------------------------------------

    def receive(self, message: Message, school: str | None = None) -> Turn:
        """Everything that must be durable before the platform hears back: the claim on the event, the gate's
        verdict and, for a concern, its record. A concern is recorded whatever else is wrong with the message.
        `school`: asked of this school (the terminal's --school), whatever the routing says."""
        if message.event_key and not self.state.claim(message.event_key):
            log.info("duplicate delivery ignored platform=%s", message.place.platform)
            return Turn(message, "duplicate")
        with self._released_on_failure(message):
            return self._decide(message, school)

    @contextlib.contextmanager
    def _released_on_failure(self, message: Message):
        """A claimed event whose decision failed (the store or the model raised) is let go, so the platform's retry
        is handled rather than ignored as a duplicate; a concern already recorded is not recorded twice (its record
        is keyed by the event)."""
        try:
            yield
        except Exception:
            if message.event_key:
                self.state.release(message.event_key)
            raise

    def _decide(self, message: Message, school: str | None) -> Turn:
        text = (message.text or "").strip()
        if not text:
            return Turn(message, "notice", notice=messages.FILES_NOT_READ if message.files else messages.EMPTY_QUESTION)
        if school is not None and school not in self.catalogue.schools:
            return Turn(message, "notice", notice=self._unknown_school(school))
        choice = SchoolChoice(school) if school is not None else self.router().for_message(message.user, message.place)
        prepared = self._prepare(text, choice.school)
        assessment = (self.gate.assess(prepared.text, prepared.encoded.vector, self.answerer.index.embedder.name) if prepared
                      else self.gate.assess(text))
        if assessment.escalate:
            return self._record(message, choice.school, assessment)
        if choice.school is None:
            if choice.options:
                return Turn(message, "choose", options=choice.options, assessment=assessment)
            return Turn(message, "notice", notice=messages.no_school(message.place.platform))
        if prepared is None:  # a school the published index does not know
            return Turn(message, "notice", school=choice.school, notice=self._unknown_school(choice.school))
        return Turn(message, "question", school=choice.school, prepared=prepared, assessment=assessment)

    def report(self, message: Message, school: str | None = None) -> Turn:
        """A concern the member of staff reports themselves (a button, `/policy report`, App Home): recorded with no
        classifier deciding whether it is one; only who it is about is judged, to route it."""
        if message.event_key and not self.state.claim(message.event_key):
            return Turn(message, "duplicate")
        text = (message.text or "").strip()
        if not text:
            return Turn(message, "notice", notice=messages.REPORT_NOTHING_TO_SEND)
        with self._released_on_failure(message):
            school = school or self.router().for_message(message.user, message.place).school
            verdict = self.gate.assess(text)
            recipient = verdict.recipient if verdict.level != "none" else "dsl"
            return replace(self._record(message, school, Assessment.reported(recipient)), reported=True)

    def reply(self, turn: Turn) -> Reply | None:
        """What to say to the writer (None for a duplicate)."""
        if turn.kind == "duplicate":
            return None
        if turn.kind == "notice":  # "how to set up a school" is for the writer alone; "please type a question" may be seen
            return Reply(notice=turn.notice, private=turn.notice in messages.NO_SCHOOL.values())
        if turn.kind == "choose":
            return Reply(choose_school=self.school_names(turn.options), held_question=turn.message.text, private=True)
        if turn.kind == "concern":
            return Reply(escalated=self._escalated(turn), private=True)
        try:
            answer = self.answerer.answer(Question(turn.message.text, turn.school, turn.message.user, uuid.uuid4().hex),
                                          turn.prepared, offer_report=bool(turn.assessment and turn.assessment.unsure))
        except QuestionError as exc:
            return Reply(notice=str(exc))
        except UnknownSchool:
            return Reply(notice=self._unknown_school(turn.school), private=True)
        if answer.status == NOT_COVERED:
            self._count_decline(turn)
        return Reply(answer=answer)

    def done(self, turn: Turn, delivered: bool = True) -> None:
        """The reply reached the writer (or could not): finish the event's claim, and note that they were told."""
        if turn.message.event_key and turn.kind != "duplicate":
            if delivered or turn.kind == "concern":  # a concern is recorded: a retry must not record it again
                self.state.finish(turn.message.event_key)
            else:
                self.state.release(turn.message.event_key)  # nothing reached them: the platform's retry may try again
        if delivered and turn.escalation_id and self.escalations is not None:
            self.escalations.mark_notified(turn.escalation_id)

    def choose_school(self, user: str, school: str, place: Place, held: str = "") -> Reply:
        options = self.router().options(user, place.platform)
        if school not in options:
            return Reply(notice=messages.unknown_school(school, list(options)), private=True)
        self.state.choose_school(user, school)
        return Reply(notice=messages.school_chosen(self.catalogue.schools[school].name), private=True, held_question=held)

    # -- buttons --------------------------------------------------------------------------------

    def vote(self, question_id: str, user: str, vote: str, school: str | None, policy: str | None, section: str | None) -> Reply:
        self.state.record_vote(str(question_id)[:64], user, vote, _known(school, self.catalogue.schools),
                               (policy or "")[:64] or None, (section or "")[:32] or None)
        log.info("feedback question_id=%s vote=%s", str(question_id)[:64], vote)
        return Reply(notice=messages.THANKS_FOR_FEEDBACK, private=True)

    def ask_person(self, school: str, question: str, question_id: str, platform: str) -> Handoff | Reply:
        """A question the policy did not settle, for the policy owner's channel on the asker's platform."""
        meta = self.catalogue.schools.get(school)
        if meta is None:
            return Reply(notice=messages.unknown_school(school, sorted(self.catalogue.schools)), private=True)
        routes = self.settings.routes(school).on(platform)
        settings = self.settings.platform(platform)
        channel = routes.policy_owner_channel or (settings.catalogue_owner_channel(meta.policies) if settings else None)
        if not channel:
            return Reply(notice=messages.no_policy_owner(meta.ask), private=True)
        log.info("asked a person question_id=%s school=%s", str(question_id)[:64], school)
        return Handoff(platform, channel, meta.name, question[:1800], str(question_id)[:64])

    # -- admin ----------------------------------------------------------------------------------

    def is_admin(self, platform: str, user: str) -> bool:
        settings = self.settings.platform(platform)
        return bool(settings) and settings.user_key(user) in settings.admins

    def status(self) -> str:
        return "\n".join(admin.status_lines(self.answerer, self.settings, self.deliverer, self.state))

    def gaps(self) -> str:
        return "\n".join(admin.gap_lines(self.state))

    def reindex(self) -> str:
        if self._reindex is None:
            raise PolicyBotError("Reindexing is not available in this process; run `policybot index` on the server.")
        return self._reindex()

    # -- crash recovery -------------------------------------------------------------------------

    def unnotified(self, older_than: dt.timedelta = dt.timedelta(seconds=30)) -> list[tuple[dict, Reply, str]]:
        """Concerns recorded but whose writer was never told what happened (a crash came between):
        (where to reach them, the reply, the escalation id)."""
        if self.escalations is None:
            return []
        out = []
        for record in self.escalations.unnotified(older_than):
            recipient = "chair" if record.about_head else "head" if record.route == "staff-allegation" else "dsl"
            route = self.deliverer.route(record.school or None, recipient, record.platform) if self.deliverer else None
            at = dt.datetime.fromisoformat(record.raised_at).astimezone(self._zone)
            delivery = Delivery(self.deliverer.describe(route) if route else None, at, record.id, bool(route and route.fallback))
            out.append((record.reply_to or {}, Reply(escalated=Escalated(record.school, recipient, record.categories, delivery)), record.id))
        return out

    # -- internals ------------------------------------------------------------------------------

    def _prepare(self, text: str, school: str | None) -> Prepared | None:
        if school is None:
            return None
        try:
            return self.answerer.prepare(text, school)
        except UnknownSchool:
            return None

    def _record(self, message: Message, school: str | None, assessment: Assessment) -> Turn:
        """Record a concern durably and hand it to delivery; where no platform can deliver, nothing is recorded and
        the writer is told nobody was alerted."""
        platform = message.place.platform
        route = self.deliverer.route(school, assessment.recipient, platform) if self.deliverer is not None else None
        if self.escalations is None or self.deliverer is None or not message.event_key:
            log.info("concern with no delivery from here platform=%s route=%s", platform, assessment.route)
            return Turn(message, "concern", school=school, assessment=assessment)
        request = EscalationRequest(
            dedupe_key=message.event_key, school=school or "", route=assessment.route or "dsl", categories=assessment.categories,
            reasons=assessment.reasons, about_head=assessment.about_head, raised_by=message.user, channel=message.place.channel,
            message_ts=message.message_ref, permalink=message.permalink, text=message.raw_text or message.text, platform=platform,
            reply_to=message.reply_to)
        record, created = self.escalations.record(request)
        self.deliverer.deliver_soon(record.id)
        recorded_at = dt.datetime.fromisoformat(record.raised_at).astimezone(self._zone)
        return Turn(message, "concern", school=school, assessment=assessment, escalation_id=record.id, route=route,
                    recorded_at=recorded_at)

    def _escalated(self, turn: Turn) -> Escalated:
        a = turn.assessment
        if turn.escalation_id and turn.route is not None:
            delivery = Delivery(self.deliverer.describe(turn.route), turn.recorded_at, turn.escalation_id, turn.route.fallback)
        else:
            delivery = Delivery(None, turn.recorded_at, turn.escalation_id)
        clause = self.answerer.reporting_clause(turn.school) if turn.school else None
        return Escalated(turn.school or "", a.recipient, a.categories, delivery, clause, turn.reported)

    def _count_decline(self, turn: Turn) -> None:
        try:
            area = turn.prepared.snapshot.retriever.areas.nearest(turn.prepared.encoded.vector[None, :], turn.prepared.snapshot.retriever.embedder)
            self.state.count_decline(turn.school, area.area if area and area.similarity >= 0.3 else "")
        except Exception:  # a count is worth less than the answer
            log.exception("could not count a declined question")

    def _unknown_school(self, school: str | None) -> str:
        return messages.unknown_school(school or "", sorted(self.catalogue.schools))


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:16]


def _known(school: str | None, schools) -> str | None:
    return school if school in schools else None
