"""From a staff question to an `Answer`: the school's own clauses, and how sure the bot is that they answer it.

No chat platform and no safeguarding here: the conversation core runs the gate
first (on the same pass through the model, `prepare`) and hands this module
only what is a question. Three outcomes (bot/core/answer.py):

- ANSWERED: a clause answers it surely (bot/core/decision.py decides, learned from many writers'
  questions; bot/core/coverage.py's thresholds where no decision is fitted); it is quoted with its citation;
- UNSURE: the nearest clauses are shown as the nearest, with who to ask;
- NOT_COVERED: nothing is near enough; the bot says so and names who to ask.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bot import messages
from bot.core.answer import ANSWERED, NOT_COVERED, UNSURE, Answer, Citation, Overdue
from bot.core.coverage import Coverage, gives_answer_type, other_policy_named, without_school_name
from bot.core.decision import Decision, signals
from bot.core.quoting import quote
from index.catalogue import Catalogue, UnknownSchool
from index.errors import PolicyBotError
from index.live import LiveIndex, Snapshot
from index.model import Hit
from index.search import Encoded, Match

log = logging.getLogger(__name__)

CANDIDATES = 5
# quote the second clause too when its score is this close to the best (scores are weighted means, index/search.py)
QUOTE_BOTH_WITHIN = 0.04
# what a school's own clause on reporting a concern answers
REPORTING_QUESTION = "How do I report a safeguarding concern about a child to the designated safeguarding lead?"


class QuestionError(PolicyBotError):
    """The question cannot be asked as it stands (empty, too long); the message says what to do."""


@dataclass(frozen=True)
class Question:
    text: str
    school: str
    asker: str | None = None  # a platform user id, never a name
    question_id: str = ""


@dataclass(frozen=True)
class Prepared:
    """A question through the model once, for the safeguarding gate and for retrieval alike."""

    text: str  # the question as searched: the school's own name taken out
    encoded: Encoded
    snapshot: Snapshot  # the index the whole answer uses


def check_question(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise QuestionError(messages.EMPTY_QUESTION)
    if len(text) > messages.MAX_QUESTION_CHARS:
        raise QuestionError(messages.too_long(len(text)))
    return text


def confidence(hits: list[Hit]) -> float:
    """How surely the school's policies answer the question: the best judging score among the candidates."""
    return max((hit.confidence for hit in hits), default=0.0)


class Answerer:
    def __init__(self, index: LiveIndex, coverage: Coverage = Coverage(), today: Callable[[], dt.date] = dt.date.today,
                 catalogue: Catalogue | None = None, decision: Decision | None = None):
        self.index = index
        self.coverage = coverage
        self.decision = decision  # the learned answer-or-not (bot/core/decision.py); None: the coverage thresholds
        self.today = today
        self._catalogue = catalogue  # tests may pin one; otherwise the published index's own

    def catalogue(self, snapshot: Snapshot | None = None) -> Catalogue:
        """The catalogue the served index was built from (a broken catalogue.yaml on disk never takes answers down)."""
        return self._catalogue or (snapshot or self.index.current()).catalogue

    def prepare(self, text: str, school: str) -> Prepared:
        """The school's name taken out of the question, and the question through the model."""
        snapshot = self.index.current()
        catalogue = self.catalogue(snapshot)
        name = catalogue.school(school).name  # raises UnknownSchool
        if school not in snapshot.retriever.schools:
            raise UnknownSchool(messages.not_indexed(school))
        searched = without_school_name((text or "").strip()[: messages.MAX_QUESTION_CHARS * 2], name) or " "
        return Prepared(searched, snapshot.retriever.encode(searched), snapshot)

    def answer(self, question: Question, prepared: Prepared | None = None, *, offer_report: bool = False) -> Answer:
        started = time.perf_counter()
        text = check_question(question.text)
        prepared = prepared or self.prepare(text, question.school)
        snapshot = prepared.snapshot
        catalogue = self.catalogue(snapshot)
        school = catalogue.school(question.school)
        retriever = snapshot.retriever
        match = retriever.match(prepared.text, question.school, k=CANDIDATES, encoded=prepared.encoded)
        hits = match.hits
        titles = tuple(p.title for p in school.policies)
        other_policy = other_policy_named(prepared.text, titles, retriever.synonyms)
        status = self._status(prepared.text, question.school, match, other_policy, retriever)
        citations = tuple(self._citation(catalogue, hit, prepared.text) for hit in hits)
        quoted = self._quoted(hits) if status == ANSWERED else min(len(citations), 2) if status == UNSURE else 0
        answer = Answer(
            question=text, school=question.school, school_name=school.name, status=status, citations=citations, quoted=quoted,
            titles=titles, ask=school.ask, overdue=self._overdue(catalogue, question.school, citations[:quoted]),
            other_policy=other_policy, offer_report=offer_report, question_id=question.question_id or uuid.uuid4().hex)
        log.info("answered question_id=%s school=%s status=%s confidence=%.3f area_lead=%.3f ms=%.1f", answer.question_id,
                 question.school, status, confidence(hits), match.area_lead, (time.perf_counter() - started) * 1000)
        return answer

    def reporting_clause(self, school: str) -> Citation | None:
        """The school's clause on how to report a concern, when one answers that surely (never an unrelated clause)."""
        try:
            prepared = self.prepare(REPORTING_QUESTION, school)
        except PolicyBotError:
            return None
        retriever = prepared.snapshot.retriever
        match = retriever.match(prepared.text, school, k=CANDIDATES, encoded=prepared.encoded)
        if not match.hits or self._status(prepared.text, school, match, None, retriever) != ANSWERED:
            return None
        return self._citation(self.catalogue(prepared.snapshot), match.hits[0], prepared.text)

    def _status(self, text: str, school: str, match: Match, other_policy: str | None, retriever) -> str:
        hits = match.hits
        if not hits or other_policy is not None:
            return NOT_COVERED
        sure = confidence(hits)
        unknown = retriever.unknown_share(text, school)
        if self.decision is not None:
            read = signals(text, match, unknown, self.coverage.min_score, self._quoted(hits))
            covered = self.decision.answers(read, floor=self.coverage.min_score)
        else:
            covered = (self.coverage.covers(sure, unknown, match.area_lead)
                       and gives_answer_type(text, (h.chunk.text for h in hits if h.confidence >= self.coverage.min_score)))
        if covered:
            return ANSWERED
        return UNSURE if sure >= self.coverage.min_score else NOT_COVERED

    @staticmethod
    def _quoted(hits: list[Hit]) -> int:
        """Quote the best clause, and the next one when it is nearly as good (two schools' rules often span two)."""
        if len(hits) > 1 and hits[1].score >= hits[0].score - QUOTE_BOTH_WITHIN:
            return 2
        return 1

    @staticmethod
    def _citation(catalogue: Catalogue, hit: Hit, question: str) -> Citation:
        chunk = hit.chunk
        meta = catalogue.policy(chunk.school, chunk.policy) if chunk.school in catalogue.schools else None
        return Citation(
            school=chunk.school, policy=chunk.policy, title=meta.title if meta else chunk.policy, section=chunk.section,
            heading=chunk.heading_path, text=chunk.text, quote=quote(hit, question), score=round(hit.score, 4),
            url=(meta.url or catalogue.schools[chunk.school].url) if meta else None, next_review=meta.next_review.isoformat() if meta and meta.next_review else None)

    def _overdue(self, catalogue: Catalogue, school: str, citations) -> tuple[Overdue, ...]:
        today = self.today()
        out = []
        for policy_id in dict.fromkeys(c.policy for c in citations):
            meta = catalogue.policy(school, policy_id)
            if meta and meta.is_overdue(today):
                out.append(Overdue(meta.title, meta.next_review))
        return tuple(out)
