"""The answer pipeline: a staff question in, the school's own clauses out, quoted and cited.

No chat platform here: adapters turn their events into a `Question` and the
returned `Answer` into their own message format.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol
from dataclasses import asdict, dataclass, field

from bot import messages
from bot.coverage import Coverage, gives_answer_type, other_policy_named, without_school_name
from index.catalogue import Catalogue, UnknownSchool
from index.chunk import passages
from index.errors import PolicyBotError
from index.live import LiveIndex
from index.model import Hit

log = logging.getLogger(__name__)

CANDIDATES = 5
# quote the second clause too when its score is this close to the best (scores are weighted means, index/search.py)
QUOTE_BOTH_WITHIN = 0.04
REPORTING_QUERY = "report a safeguarding concern about a child to the designated safeguarding lead "
QUOTE_CHARS = 700


class QuestionError(PolicyBotError):
    """The question cannot be asked as it stands (empty, too long); the message says what to do."""


@dataclass(frozen=True)
class Question:
    text: str
    school: str
    asker: str | None = None  # a platform user id, never a name
    channel: str | None = None
    question_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Citation:
    school: str
    policy: str
    title: str
    section: str
    heading: str
    text: str  # the whole chunk, verbatim
    score: float
    quote: str = ""  # the part shown to staff: the whole chunk, or its lead-in and best-matching item
    url: str | None = None
    next_review: str | None = None

    @property
    def label(self) -> str:
        return messages.citation_label(self.title, self.section, self.heading)


@dataclass(frozen=True)
class Answer:
    question: str
    school: str
    school_name: str
    answered: bool
    answer: str
    citations: tuple[Citation, ...]
    quoted: int = 0  # how many of the citations the answer text quotes
    warnings: tuple[str, ...] = ()
    ask: str = ""
    question_id: str = ""
    escalate: bool = False
    route: str | None = None
    categories: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # why each category was chosen, for the escalation record
    about_head: bool = False  # a staff allegation about the headteacher: the chair of governors' route

    def to_json(self) -> dict:
        data = asdict(self)
        data["citations"] = [asdict(c) for c in self.citations]
        data["categories"] = list(self.categories)
        data["reasons"] = list(self.reasons)
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class Assessment:
    """The safeguarding gate's verdict on one message."""

    escalate: bool
    route: str | None = None  # "dsl" | "staff-allegation" | None
    categories: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # one per category: why it was chosen (shown to the DSL, never invented text)
    about_head: bool = False  # a staff allegation about the headteacher goes to the chair of governors


class SafeguardingGate(Protocol):
    def assess(self, text: str) -> Assessment: ...

    def guidance(self, assessment: Assessment) -> str: ...


def check_question(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise QuestionError(messages.EMPTY_QUESTION)
    if len(text) > messages.MAX_QUESTION_CHARS:
        raise QuestionError(messages.too_long(len(text)))
    return text


def confidence(hits: list[Hit]) -> float:
    """How surely the school's policies answer the question: the best judging score among the candidates.

    Ranking and judging use different layers of the model (index/tokens.py); whichever clause ranks first,
    the policy covers the question when some candidate clause matches it well.
    """
    return max((hit.confidence for hit in hits), default=0.0)


class Answerer:
    def __init__(
        self,
        catalogue: Catalogue,
        index: LiveIndex,
        today: Callable[[], dt.date] = dt.date.today,
        coverage: Coverage = Coverage(),
        safeguarding: SafeguardingGate | None = None,
    ):
        self.catalogue = catalogue
        self.index = index
        self.today = today
        self.coverage = coverage
        self.safeguarding = safeguarding

    def assess(self, text: str) -> Assessment:
        """The safeguarding gate, run on every message before any policy answer (any length)."""
        if self.safeguarding is None or not (text or "").strip():
            return Assessment(escalate=False)
        return self.safeguarding.assess(text)

    def answer(self, question: Question) -> Answer:
        started = time.perf_counter()
        school = self.catalogue.school(question.school)  # raises UnknownSchool
        assessment = self.assess(question.text)
        if assessment.escalate:
            return self._escalation_answer(question, school, assessment)
        text = check_question(question.text)
        snapshot = self.index.current()  # one index for the whole answer
        if question.school not in snapshot.retriever.schools:
            raise UnknownSchool(f"School {question.school!r} has no policies in the index; run `policybot index`.")
        hits, other_policy, covered, area_lead = self._match(text, question.school, school, snapshot.retriever)
        sure = confidence(hits)
        citations = tuple(self._citation(hit) for hit in hits)
        titles = [p.title for p in school.policies]
        if covered:
            quoted = self._quoted(hits)
            body = self._compose(school.name, citations[:quoted])
        elif other_policy is None and hits and sure >= self.coverage.min_score:
            # a middling match: say plainly that it may not answer, show it, and name who to ask
            quoted = 1
            body = messages.unsure(school.name, titles, school.ask) + "\n\n" + self._quoted_clause(citations[0])
        else:
            quoted = 0
            body = messages.not_covered(school.name, titles, school.ask, other_policy)
        body, warnings = self._with_warnings(body, question.school, citations[:quoted], school.ask)
        log.info(
            "answered question_id=%s school=%s covered=%s confidence=%.3f area_lead=%.3f ms=%.1f",
            question.question_id, question.school, covered, sure, area_lead,
            (time.perf_counter() - started) * 1000,
        )
        return Answer(
            question=text,
            school=question.school,
            school_name=school.name,
            answered=covered,
            answer=body,
            citations=citations,
            quoted=quoted,
            warnings=tuple(warnings),
            ask=school.ask,
            question_id=question.question_id,
        )

    def _escalation_answer(self, question: Question, school, assessment: Assessment) -> Answer:
        """Guidance for the staff member now, the school's clause on reporting concerns, and, when the
        message also asks a policy question the policy answers ("can I message them on Insta?"), that answer."""
        retriever = self.index.current().retriever
        text = question.text.strip()[: messages.MAX_QUESTION_CHARS]
        reporting = retriever.search(REPORTING_QUERY + text[:300], question.school, k=1)
        own, _, answers_question, _ = self._match(text, question.school, school, retriever) if text else ([], None, False, 0.0)
        # the answer to what they asked first (when the policy answers it), then the clause on reporting concerns;
        # the reporting clause leads when it answers the message nearly as well ("a pupil messaged me, what do I do?")
        reporting_leads = not answers_question or (bool(reporting) and any(
            hit.chunk == reporting[0].chunk and hit.score >= own[0].score - QUOTE_BOTH_WITHIN for hit in own))
        ordered = reporting + own if reporting_leads else own[:1] + reporting + own[1:]
        asked = {hit.chunk: hit for hit in own}
        first: dict = {}
        for hit in ordered:
            # each clause once, where it first appears, quoted as the staff member's own question matched it
            first.setdefault(hit.chunk, asked.get(hit.chunk, hit))
        citations = tuple(self._citation(hit) for hit in first.values())
        quoted = min(len(citations), 2 if answers_question and reporting and reporting[0].chunk != own[0].chunk else 1)
        body = self.safeguarding.guidance(assessment)
        if quoted:
            body += "\n\n" + self._compose(school.name, citations[:quoted])
        body, warnings = self._with_warnings(body, question.school, citations[:quoted], school.ask)
        log.info("escalation question_id=%s school=%s route=%s categories=%s", question.question_id, question.school,
                 assessment.route, ",".join(assessment.categories))
        return Answer(
            question=question.text, school=question.school, school_name=school.name, answered=True, answer=body,
            citations=citations, quoted=quoted, warnings=tuple(warnings), ask=school.ask, question_id=question.question_id,
            escalate=True, route=assessment.route, categories=assessment.categories,
            reasons=assessment.reasons, about_head=assessment.about_head,
        )

    def _match(self, text: str, school_id: str, school, retriever) -> tuple[list[Hit], str | None, bool, float]:
        """The school's best clauses for a question, the other policy it names (if any), whether they answer it,
        and how much nearer it is to an area of school life than to the school's policies (index/areas.py)."""
        searched = without_school_name(text, school.name)
        match = retriever.match(searched, school_id, k=CANDIDATES)
        hits = match.hits
        other_policy = other_policy_named(searched, [p.title for p in school.policies], retriever.synonyms)
        covered = (bool(hits) and other_policy is None
                   and self.coverage.covers(confidence(hits), retriever.unknown_share(text, school_id), match.area_lead)
                   and gives_answer_type(searched, (h.chunk.text for h in hits if h.confidence >= self.coverage.min_score)))
        return hits, other_policy, covered, match.area_lead

    @staticmethod
    def _quoted(hits: list[Hit]) -> int:
        """Quote the best clause, and the next one when it is nearly as good (two schools' rules often span two)."""
        if len(hits) > 1 and hits[1].score >= hits[0].score - QUOTE_BOTH_WITHIN:
            return 2
        return 1

    def _citation(self, hit: Hit) -> Citation:
        chunk = hit.chunk
        meta = self.catalogue.policy(chunk.school, chunk.policy)
        return Citation(
            school=chunk.school,
            policy=chunk.policy,
            title=meta.title if meta else chunk.policy,
            section=chunk.section,
            heading=chunk.heading_path,
            text=chunk.text,
            score=round(hit.score, 4),
            quote=quote(hit),
            url=meta.url if meta else None,
            next_review=meta.next_review.isoformat() if meta and meta.next_review else None,
        )

    @classmethod
    def _compose(cls, school_name: str, citations: tuple[Citation, ...]) -> str:
        lines = [messages.covered_intro(school_name, citations[0].title)]
        lines.extend(cls._quoted_clause(citation) for citation in citations)
        return "\n\n".join(lines)

    @staticmethod
    def _quoted_clause(citation: Citation) -> str:
        quoted = "\n".join(f"> {line}" for line in citation.quote.split("\n"))
        return f"{quoted}\n— {citation.label}"

    def _with_warnings(self, body: str, school: str, citations, ask: str) -> tuple[str, list[str]]:
        """The answer with a line for each quoted policy past its review date, and those lines."""
        warnings = self._warnings(school, citations, ask)
        return (body + "\n\n" + "\n".join(warnings) if warnings else body), warnings

    def _warnings(self, school: str, citations, ask: str) -> list[str]:
        out = []
        today = self.today()
        for policy_id in dict.fromkeys(c.policy for c in citations):
            meta = self.catalogue.policy(school, policy_id)
            if meta and meta.is_overdue(today):
                out.append(messages.overdue(meta.title, meta.next_review, ask))
        return out


def quote(hit: Hit) -> str:
    """The whole chunk when short; otherwise its lead-in and the item that matched best."""
    text = hit.chunk.text
    if len(text) <= QUOTE_CHARS:
        return text
    parts = passages(hit.chunk)
    lines = text.split("\n")
    if hit.passage <= 0 or hit.passage > len(parts):
        return text[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
    best = parts[hit.passage - 1]
    intro = lines[0] if lines[0].endswith(":") and len(lines) > 1 else ""
    if intro and best.startswith(intro):
        return f"{intro}\n- … {best[len(intro):].strip()} …"
    return f"… {best} …"
