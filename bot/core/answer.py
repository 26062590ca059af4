"""What the conversation core hands a platform: structure, never rendered text.

An `Answer` says which of three things the bot knows (it quotes the deciding
clause, it is unsure and shows the nearest ones, or the policies do not cover
the question), with the clauses and their citations, the warnings that go with
them and who to ask. A `Reply` is one message for the person: an answer, the
safeguarding guidance with where the concern went, a school picker, or a notice.
Each platform renders these (bot/slack/blocks.py, bot/teams/cards.py,
bot/cli/render.py) with the sentences of bot/messages.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

ANSWERED, UNSURE, NOT_COVERED = "answered", "unsure", "not_covered"


@dataclass(frozen=True)
class Citation:
    school: str
    policy: str
    title: str
    section: str
    heading: str
    text: str  # the whole clause, verbatim
    quote: str  # the part shown: the whole clause, or the sentence or item that carries the rule with its lead-in
    score: float
    url: str | None = None
    next_review: str | None = None  # ISO date


@dataclass(frozen=True)
class Overdue:
    """A quoted policy past its review date."""

    title: str
    due: dt.date


@dataclass(frozen=True)
class Answer:
    question: str
    school: str
    school_name: str
    status: str  # ANSWERED | UNSURE | NOT_COVERED
    citations: tuple[Citation, ...]  # best first; for UNSURE and NOT_COVERED, the nearest clauses, for reference
    quoted: int  # how many of the citations are shown
    titles: tuple[str, ...]  # the school's policy titles (for "...'s Social Media Policy does not cover this")
    ask: str  # who to ask when the policy is silent
    overdue: tuple[Overdue, ...] = ()
    other_policy: str | None = None  # a policy the question names that the school has not loaded
    offer_report: bool = False  # the safeguarding gate was unsure: offer "Report this to the DSL"
    question_id: str = ""

    @property
    def answered(self) -> bool:
        return self.status == ANSWERED

    def to_json(self) -> dict:
        data = asdict(self)
        data["answered"] = self.answered
        data["citations"] = [asdict(c) for c in self.citations]
        data["overdue"] = [{"title": o.title, "due": o.due.isoformat()} for o in self.overdue]
        data["titles"] = list(self.titles)
        return data


@dataclass(frozen=True)
class Delivery:
    """The truth about a concern, for the member of staff: where it went, or that nobody was alerted."""

    sent_to: str | None  # the recipient channel's name, when a route exists and the record is written
    recorded_at: dt.datetime | None  # local time the record was written
    escalation_id: str | None = None
    fallback: bool = False  # the route had no channel of its own: it went to the DSL's channel, marked so

    @property
    def alerted(self) -> bool:
        return self.sent_to is not None


@dataclass(frozen=True)
class Escalated:
    """The reply to a concern: what to do now (KCSIE), where it went, and the school's own reporting clause."""

    school: str
    recipient: str  # "dsl" | "head" | "chair"
    categories: tuple[str, ...]
    delivery: Delivery
    reporting_clause: Citation | None = None  # only a clause that says how to report
    reported_directly: bool = False  # the member of staff pressed "Report", no classifier


@dataclass(frozen=True)
class Reply:
    """One message for the person who wrote: exactly one of the fields is set."""

    answer: Answer | None = None
    escalated: Escalated | None = None
    choose_school: tuple[tuple[str, str], ...] = ()  # (id, name) to pick from
    notice: str = ""  # a sentence of bot/messages.py: an error, a confirmation, help
    private: bool = False  # only the person should see it (in a channel: ephemeral)
    held_question: str = ""  # with choose_school: the question to answer once a school is picked
    extra: dict = field(default_factory=dict)  # small platform-neutral facts a renderer may show (status lines)
