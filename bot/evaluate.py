"""Score a question file or a safeguarding case file, as `policybot eval FILE` prints it.

Questions: hit@1/3/5 (the gold clause among the first k citations), how many are
answered (the bot sure), how many answered ones quote no gold clause (confident
wrong), not-covered questions declined, and citations from another school.
Cases: concerns forwarded, offered the report, missed; false alarms and offers
on ordinary messages; forwarded concerns on the right route (DSL, headteacher,
or chair of governors when `about_head: true`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.core.answering import Answerer, Question, QuestionError
from index.errors import PolicyBotError


class EvalFileError(PolicyBotError):
    pass


def squash(text: str) -> str:
    """Lower-case with spacing and punctuation removed, for gold-phrase matching."""
    return re.sub(r"[\W_]+", "", str(text).lower())


@dataclass
class EvalReport:
    answerable: int = 0
    hits: dict[int, int] = field(default_factory=lambda: {1: 0, 3: 0, 5: 0})
    answered: int = 0  # answerable questions the bot was sure of
    confident_wrong: int = 0  # ... whose quoted clauses hold no gold phrase
    unsure: int = 0
    unanswerable: int = 0
    declined: int = 0  # not-covered questions not answered (unsure or not covered)
    declined_outright: int = 0  # ... told "not covered" with no nearest clauses
    escalated: int = 0  # questions the safeguarding gate forwarded
    foreign_citations: int = 0
    misses: list[dict] = field(default_factory=list)

    def figures(self) -> dict:
        n = max(self.answerable, 1)
        return {
            "questions": self.answerable + self.unanswerable,
            "hit@1": round(self.hits[1] / n, 4),
            "hit@3": round(self.hits[3] / n, 4),
            "hit@5": round(self.hits[5] / n, 4),
            "answered": f"{self.answered}/{self.answerable}",
            "confident_wrong": f"{self.confident_wrong}/{self.answered}",
            "not_covered_declined": f"{self.declined}/{self.unanswerable}",
            "not_covered_declined_outright": f"{self.declined_outright}/{self.unanswerable}",
            "escalated_questions": self.escalated,
            "citations_from_other_schools": self.foreign_citations,
        }


def read_eval_file(path: Path):
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise EvalFileError(f"{path}: cannot read the file ({type(exc).__name__})") from None


def load_questions(path: Path, rows=None) -> list[dict]:
    rows = read_eval_file(path) if rows is None else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "q" in r and "school" in r for r in rows):
        raise EvalFileError(f"{path}: expected a list of {{school, q, gold}} or {{school, q, answered: false}} entries")
    return rows


def golds(row: dict) -> list[str]:
    gold = row.get("gold")
    return [squash(g) for g in (gold if isinstance(gold, list) else [gold]) if g]


def gold_rank(citations, row: dict) -> int | None:
    wanted = golds(row)
    return next((i for i, c in enumerate(citations) if any(g in squash(c.text) for g in wanted)), None)


def evaluate(answerer: Answerer, gate, rows: list[dict]) -> EvalReport:
    """Each question as the core asks it: the gate first (a forwarded question is counted, not answered), then the answer."""
    report = EvalReport()
    for row in rows:
        school, text = str(row["school"]), str(row["q"])
        unanswerable = row.get("answered", True) is False
        try:
            prepared = answerer.prepare(text, school)
            verdict = gate.assess(prepared.text, prepared.encoded.vector, answerer.index.embedder.name) if gate is not None else None
            if verdict is not None and verdict.escalate:
                report.escalated += 1
                answer = None
            else:
                answer = answerer.answer(Question(text, school), prepared, offer_report=bool(verdict and verdict.unsure))
        except QuestionError as exc:
            report.misses.append({"school": school, "q": text, "problem": str(exc)})
            answer = None
        citations = answer.citations if answer else ()
        report.foreign_citations += sum(1 for c in citations if c.school != school)
        if unanswerable:
            report.unanswerable += 1
            declined = answer is None or not answer.answered
            report.declined += declined
            report.declined_outright += answer is not None and answer.quoted == 0
            if not declined:
                report.misses.append({"school": school, "q": text, "problem": "answered a question the policy does not cover"})
            continue
        report.answerable += 1
        rank = gold_rank(citations, row)
        for k in report.hits:
            report.hits[k] += rank is not None and rank < k
        if answer is None:
            report.misses.append({"school": school, "q": text, "problem": "forwarded as a safeguarding concern"})
            continue
        if answer.answered:
            report.answered += 1
            if rank is None or rank >= answer.quoted:
                report.confident_wrong += 1
                report.misses.append({"school": school, "q": text, "problem": f"CONFIDENT WRONG: gold at rank {rank}"})
                continue
        else:
            report.unsure += answer.status == "unsure"
        if rank != 0:
            report.misses.append({"school": school, "q": text, "problem": f"gold at rank {rank}"})
    return report


@dataclass
class SafeguardingReport:
    concerns: int = 0
    forwarded: int = 0
    offered: int = 0
    missed: int = 0
    right_route: int = 0
    ordinary: int = 0
    false_alarms: int = 0
    offers_on_ordinary: int = 0
    misses: list[dict] = field(default_factory=list)

    def figures(self) -> dict:
        return {
            "concerns_forwarded": f"{self.forwarded}/{self.concerns}",
            "concerns_offered_the_report": f"{self.offered}/{self.concerns}",
            "concerns_missed": f"{self.missed}/{self.concerns}",
            "forwarded_on_the_right_route": f"{self.right_route}/{self.forwarded}",
            "false_alarms": f"{self.false_alarms}/{self.ordinary}",
            "offers_on_ordinary_messages": f"{self.offers_on_ordinary}/{self.ordinary}",
        }


def load_safeguarding_cases(path: Path, data=None) -> dict | None:
    """The cases of a safeguarding file, or None when the file is a question file."""
    data = read_eval_file(path) if data is None else data
    if not isinstance(data, dict) or "escalate" not in data:
        return None
    escalate, ordinary = data.get("escalate") or [], data.get("no_escalate") or []
    if not all(isinstance(c, dict) and "q" in c and c.get("route") in ("dsl", "staff-allegation") for c in escalate) or not all(
            isinstance(c, dict) and "q" in c for c in ordinary):
        raise EvalFileError(f"{path}: expected escalate: [{{q, route: dsl|staff-allegation}}] and no_escalate: [{{q}}]")
    # a file that never says `about_head` (written before the chair's route was scored) does not tell head from chair
    labelled = data.get("about_head_labelled", any("about_head" in c for c in escalate)) is not False
    return {"escalate": escalate, "no_escalate": ordinary, "head_labelled": labelled}


def evaluate_safeguarding(gate, cases: dict) -> SafeguardingReport:
    report = SafeguardingReport()
    for case in cases["escalate"]:
        report.concerns += 1
        verdict = gate.assess(str(case["q"]))
        if not verdict.escalate:
            report.offered += verdict.unsure
            report.missed += not verdict.unsure
            report.misses.append({"q": case["q"], "problem": "offered the report only" if verdict.unsure else "MISSED: neither forwarded nor offered"})
            continue
        report.forwarded += 1
        want = "dsl" if case["route"] == "dsl" else ("chair" if case.get("about_head") else "head")
        if not cases.get("head_labelled", True) and want == "head":
            right = verdict.recipient in ("head", "chair")
        else:
            right = verdict.recipient == want
        report.right_route += right
        if not right:
            report.misses.append({"q": case["q"], "problem": f"route: expected {want}, got {verdict.recipient}"})
    for case in cases["no_escalate"]:
        report.ordinary += 1
        verdict = gate.assess(str(case["q"]))
        report.false_alarms += verdict.escalate
        report.offers_on_ordinary += verdict.unsure
        if verdict.escalate:
            report.misses.append({"q": case["q"], "problem": f"false alarm ({verdict.recipient}: {', '.join(verdict.categories)})"})
    return report
