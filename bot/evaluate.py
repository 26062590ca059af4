"""Score a question file: hit@k on gold clause phrases, unanswerable handling, cross-school citations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.answer import Answerer, Question
from index.errors import PolicyBotError


class EvalFileError(PolicyBotError):
    pass


def squash(text: str) -> str:
    """Lower-case with spacing and punctuation removed, for gold-phrase matching."""
    return re.sub(r"[\W_]+", "", text.lower())


@dataclass
class EvalReport:
    answerable: int = 0
    hits: dict[int, int] = field(default_factory=lambda: {1: 0, 3: 0, 5: 0})
    answered_hits: dict[int, int] = field(default_factory=lambda: {1: 0, 3: 0})  # and not refused
    unanswerable: int = 0
    unanswerable_ok: int = 0
    answerable_refused: int = 0
    foreign_citations: int = 0
    misses: list[dict] = field(default_factory=list)

    def figures(self) -> dict:
        n = max(self.answerable, 1)
        return {
            "questions": self.answerable + self.unanswerable,
            "hit@1": round(self.hits[1] / n, 4),
            "hit@3": round(self.hits[3] / n, 4),
            "hit@5": round(self.hits[5] / n, 4),
            # stricter: a refused answerable question counts as a miss even when its nearest clause was right
            "answered_hit@1": round(self.answered_hits[1] / n, 4),
            "answered_hit@3": round(self.answered_hits[3] / n, 4),
            "unanswerable_handled": f"{self.unanswerable_ok}/{self.unanswerable}",
            "answerable_refused": self.answerable_refused,
            "citations_from_other_schools": self.foreign_citations,
        }


def read_eval_file(path: Path):
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalFileError(f"{path}: cannot read the file ({exc})") from None


def load_questions(path: Path, rows=None) -> list[dict]:
    """A question file's entries (`rows`: the file already read with `read_eval_file`)."""
    rows = read_eval_file(path) if rows is None else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "q" in r and "school" in r for r in rows):
        raise EvalFileError(f"{path}: expected a list of {{school, q, gold}} or {{school, q, answered: false}} entries")
    return rows


def evaluate(answerer: Answerer, rows: list[dict]) -> EvalReport:
    report = EvalReport()
    for row in rows:
        answer = answerer.answer(Question(text=row["q"], school=row["school"]))
        report.foreign_citations += sum(1 for c in answer.citations if c.school != row["school"])
        if row.get("answered", True) is False:
            report.unanswerable += 1
            report.unanswerable_ok += not answer.answered
            if answer.answered:
                report.misses.append({"school": row["school"], "q": row["q"], "problem": "answered an unanswerable question"})
            continue
        report.answerable += 1
        gold = squash(str(row["gold"]))
        rank = next((i for i, c in enumerate(answer.citations) if gold in squash(c.text)), None)
        if not answer.answered:
            report.answerable_refused += 1
        for k in report.hits:
            report.hits[k] += rank is not None and rank < k
        for k in report.answered_hits:
            report.answered_hits[k] += answer.answered and rank is not None and rank < k
        if rank is None or rank > 0:
            report.misses.append({"school": row["school"], "q": row["q"], "problem": f"gold at rank {rank}"})
    return report


@dataclass
class SafeguardingReport:
    """How the safeguarding gate does on a case file in the format of dev-safeguarding.yaml."""

    concerns: int = 0
    right_route: int = 0
    ordinary: int = 0
    false_alarms: int = 0
    misses: list[dict] = field(default_factory=list)

    def figures(self) -> dict:
        return {
            "concerns_escalated_on_right_route": f"{self.right_route}/{self.concerns}",
            "false_alarms": f"{self.false_alarms}/{self.ordinary}",
        }


def load_safeguarding_cases(path: Path, data=None) -> dict | None:
    """The cases of a safeguarding file, or None when the file is a question file."""
    data = read_eval_file(path) if data is None else data
    if not isinstance(data, dict) or "escalate" not in data:
        return None
    escalate, ordinary = data.get("escalate") or [], data.get("no_escalate") or []
    if not all(isinstance(c, dict) and "q" in c and c.get("route") in ("dsl", "staff-allegation") for c in escalate) or not all(
        isinstance(c, dict) and "q" in c for c in ordinary
    ):
        raise EvalFileError(f"{path}: expected escalate: [{{q, route: dsl|staff-allegation}}] and no_escalate: [{{q}}]")
    return {"escalate": escalate, "no_escalate": ordinary}


def evaluate_safeguarding(gate, cases: dict) -> SafeguardingReport:
    report = SafeguardingReport()
    for case in cases["escalate"]:
        report.concerns += 1
        verdict = gate.assess(case["q"])
        if verdict.escalate and verdict.route == case["route"]:
            report.right_route += 1
        else:
            report.misses.append({"q": case["q"], "problem": f"expected {case['route']}, got {verdict.route if verdict.escalate else 'no escalation'}"})
    for case in cases["no_escalate"]:
        report.ordinary += 1
        verdict = gate.assess(case["q"])
        if verdict.escalate:
            report.false_alarms += 1
            report.misses.append({"q": case["q"], "problem": f"false alarm ({verdict.route}: {', '.join(verdict.categories)})"})
    return report
