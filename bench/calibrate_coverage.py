"""Calibrate when a school's policy counts as answering a question (bot/coverage.py), for one embedding model.

    .venv/bin/python bench/calibrate_coverage.py [--model all-mpnet-base-v2] [--cost 5] [--check FILE ...]

Asks every question of the calibration sets (the development set, holdout and dev-style 1-12) through the
answer pipeline's own matching, then tries every title weight and pair of thresholds on a grid. It prints
the one with the fewest errors, an unanswerable question answered counting `--cost` times an answerable
one refused (of those whose clause the bot cites in its top three), and how that setting and the shipped
one (`CALIBRATED`) do on the `--check` sets, which the choice never sees.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
CALIBRATION = [ROOT.parent / "shared" / "eval" / "dev-questions.yaml", DATA / "holdout-questions.yaml",
               *(DATA / f"devstyle{n}-questions.yaml" for n in range(1, 13))]
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)
GRID = np.round(np.arange(0.2, 1.2, 0.005), 3)


@dataclass(frozen=True)
class Asked:
    file: str
    answerable: bool
    cited_top3: bool  # the gold clause is among the first three citations
    hits: tuple  # the candidate clauses (index.model.Hit)
    unknown_share: float
    other_policy: bool  # names a policy the school has not loaded: never answered, whatever the thresholds


def runtime(model: str | None, data: Path):
    from bot.runtime import Runtime
    from bot.settings import load_settings

    settings = load_settings().model_copy(update={"data_dir": data, **({"model": model} if model else {})})
    built = Runtime(settings)
    built.ensure_index()
    return built


def ask(answerer, paths: list[Path]) -> list[Asked]:
    """Every question of `paths` through the answer pipeline's own matching (`Answerer._match`)."""
    from bot.evaluate import load_questions, squash

    retriever = answerer.index.current().retriever
    asked = []
    for path in paths:
        if not path.is_file():
            print(f"skipped (no file): {path}")
            continue
        for row in load_questions(path):
            school = answerer.catalogue.school(row["school"])
            hits, other, _ = answerer._match(row["q"], row["school"], school, retriever)
            answerable = row.get("answered", True) is not False
            gold = squash(str(row.get("gold", "")))
            asked.append(Asked(
                file=path.name, answerable=answerable,
                cited_top3=answerable and any(gold in squash(hit.chunk.text) for hit in hits[:3]),
                hits=tuple(hits),
                unknown_share=retriever.unknown_share(row["q"], row["school"]), other_policy=other is not None,
            ))
    return asked


def answered(rows: list[Asked], coverage) -> np.ndarray:
    """The pipeline's own decision for each question under `coverage` (as `Answerer._match` takes it)."""
    return np.array([not r.other_policy and coverage.covers(coverage.judge(r.hits), r.unknown_share) for r in rows])


def errors(rows: list[Asked], coverage, cost: float) -> tuple[float, int, int]:
    decided = answered(rows, coverage)
    wrong = int(sum(a for a, r in zip(decided, rows) if not r.answerable))
    refused = int(sum(not a for a, r in zip(decided, rows) if r.cited_top3))
    return cost * wrong + refused, wrong, refused


def calibrate(rows: list[Asked], cost: float):
    """The (errors, Coverage) with the fewest errors over the grid; thresholds are tried all at once, as
    `Coverage.covers` decides, with each weight's judged scores from `Coverage.judge`."""
    from bot.coverage import Coverage

    unknown_ok = np.array([r.unknown_share for r in rows]) < Coverage().max_unknown_share
    other = np.array([r.other_policy for r in rows])
    unanswerable = np.array([not r.answerable for r in rows])
    cited = np.array([r.cited_top3 for r in rows])
    best = None
    for weight in WEIGHTS:
        judged = np.array([Coverage(title_weight=weight).judge(r.hits) for r in rows])
        for low in GRID:
            middle = (judged >= low) & unknown_ok & ~other
            highs = GRID[GRID >= low]
            decided = middle[None, :] | ((judged[None, :] >= highs[:, None]) & ~other[None, :])  # (highs, rows)
            score = cost * (decided & unanswerable).sum(axis=1) + (~decided & cited).sum(axis=1)
            i = int(np.argmin(score))  # the lowest "strong" threshold of the fewest errors
            if best is None or score[i] < best[0]:
                best = (float(score[i]), Coverage(min_score=float(low), strong_score=float(highs[i]), title_weight=weight))
    return best


def report(label: str, rows: list[Asked], coverage) -> None:
    decided = answered(rows, coverage)
    for name in dict.fromkeys(r.file for r in rows):
        mine = [(a, r) for a, r in zip(decided, rows) if r.file == name]
        unanswerable = [a for a, r in mine if not r.answerable]
        print(f"  {label:9s} {name:32s} unanswerable answered {sum(unanswerable)}/{len(unanswerable)}"
              f"  answerable refused {sum(not a for a, r in mine if r.answerable)}/{sum(r.answerable for _, r in mine)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="all-mpnet-base-v2 or a sentence-transformers model directory; default the bundled model")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the data folder holding the index (built if stale)")
    parser.add_argument("--cost", type=float, default=5.0, help="an unanswerable question answered counts this many refusals")
    parser.add_argument("--check", type=Path, nargs="*", default=[], help="question sets to check the result on")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bot.coverage import CALIBRATED

    built = runtime(args.model, args.data)
    rows = ask(built.answerer, CALIBRATION)
    _, chosen = calibrate(rows, args.cost)
    score, wrong, refused = errors(rows, chosen, args.cost)
    print(f"calibrated on {len(rows)} questions: {chosen}")
    print(f"  errors {score:g}: {wrong} unanswerable answered, {refused} answerable (cited in the top three) refused")
    check = ask(built.answerer, args.check) if args.check else []
    for label, coverage in (("chosen", chosen), ("shipped", CALIBRATED.get(built.embedder.name))):
        if coverage is not None and check:
            print(f"{label}: {coverage}")
            report(label, check, coverage)


if __name__ == "__main__":
    main()
