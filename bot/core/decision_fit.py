"""Maintainers' tool: fit the answer decision (bot/core/decision.py) for the default model.

    python -m bot.core.decision_fit [--models DIR] [--sets FILE ...] [--keep FILE ...]

Every question of the sets is matched as the bot matches it; its signals and
whether the clause quoted first holds the gold phrase are the training rows.
Leave-one-school-out: fitted without a school, scored on that school's
questions; a match below coverage's min_score never answers; the threshold maximises right answers minus three times wrong ones
(a wrong clause quoted as the answer, or an answer to a question the policies
do not cover) over those held-out predictions. Prints the held-out figures
beside the hand-set thresholds', per kind of set, then fits on everything and
writes bot/core/decisions/<model>.json. `--keep` sets are scored, never fitted.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import sys
from pathlib import Path

import numpy as np

from bot.core import decision
from bot.core.answering import CANDIDATES, Answerer, Question
from bot.evaluate import gold_rank, golds, load_questions

WRONG_COST = 3.0
DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


KEPT = [DATA / "firstlook" / "qT17-questions.yaml", DATA / "firstlook" / "qH1-questions.yaml"]  # scored, never fitted


def default_sets(kept: list[Path]) -> list[Path]:
    """The development sets and the first-look sets in the real register, but for the kept ones."""
    paths = sorted(glob.glob(str(DATA / "*-questions.yaml"))) + sorted(glob.glob(str(DATA / "firstlook" / "q*-questions.yaml")))
    return [Path(p) for p in paths if Path(p).resolve() not in {k.resolve() for k in kept}]


def rows(runtime, paths: list[Path]) -> list[dict]:
    answerer = Answerer(runtime.index, coverage=runtime.answerer.coverage)  # the hand-set thresholds, to compare with
    out = []
    for path in paths:
        for row in load_questions(path):
            school, text = row["school"], str(row["q"])
            prepared = answerer.prepare(text, school)
            retriever = prepared.snapshot.retriever
            match = retriever.match(prepared.text, school, k=CANDIDATES, encoded=prepared.encoded)
            if not match.hits:
                continue
            wanted = golds(row)
            quoted = match.hits[: Answerer._quoted(match.hits)]
            right = gold_rank([h.chunk for h in quoted], row) is not None
            signals = decision.signals(prepared.text, match, retriever.unknown_share(prepared.text, school),
                                       answerer.coverage.min_score, len(quoted))
            shipped = answerer.answer(Question(text, school), prepared).status == "answered"
            first = gold_rank([match.hits[0].chunk], row) is not None
            out.append({"set": path.stem, "real": "firstlook" in str(path), "school": school, "answerable": bool(wanted),
                        "right": right, "first": first, "x": [signals[f] for f in decision.FEATURES], "rule": shipped})
    return out


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, max_iter=5000).fit((x - mean) / scale, y)
    return mean, scale, model


def figures(answered: np.ndarray, data: list[dict], mask: np.ndarray) -> str:
    answerable = np.array([r["answerable"] for r in data]) & mask
    uncovered = ~np.array([r["answerable"] for r in data]) & mask
    right = np.array([r["right"] for r in data])
    n = int((answered & answerable).sum())
    wrong = int((answered & answerable & ~right).sum())
    declined = int((~answered & uncovered).sum())
    return (f"answered {n}/{int(answerable.sum())}, wrong clause {wrong}/{n} ({wrong / max(n, 1):.1%}), "
            f"not covered declined {declined}/{int(uncovered.sum())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.core.decision_fit")
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the settings')")
    parser.add_argument("--sets", type=Path, nargs="*", default=None)
    parser.add_argument("--keep", type=Path, nargs="*", default=KEPT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from bot.runtime import Runtime
    from bot.settings import load_settings

    runtime = Runtime(load_settings(**({"models_dir": args.models} if args.models else {})))
    runtime.ensure_index()
    floor = runtime.answerer.coverage.min_score
    data = rows(runtime, args.sets or default_sets(args.keep))
    kept = rows(runtime, args.keep)
    x = np.array([r["x"] for r in data])
    y = np.array([r["right"] for r in data])
    schools = np.array([r["school"] for r in data])
    held = np.zeros(len(data))
    for school in sorted(set(schools)):
        mean, scale, model = fit(x[schools != school], y[schools != school])
        held[schools == school] = model.predict_proba((x[schools == school] - mean) / scale)[:, 1]
    strong = x[:, decision.FEATURES.index("confidence")] >= floor  # below the floor a match never answers
    grid = np.round(np.arange(0.40, 0.96, 0.01), 2)
    utility = [int(((held >= t) & strong)[y].sum()) - WRONG_COST * int(((held >= t) & strong)[~y].sum()) for t in grid]
    threshold = float(grid[int(np.argmax(utility))])
    real = np.array([r["real"] for r in data])
    rule = np.array([r["rule"] for r in data])
    print(f"{len(data)} questions ({int(real.sum())} in first-look sets); threshold {threshold}")
    first = np.array([r["first"] for r in data])
    answerable = np.array([r["answerable"] for r in data])
    for name, mask in (("first-look sets", real), ("development sets", ~real)):
        print(f"{name:17} hit@1 {first[mask & answerable].mean():.3f}; hand-set thresholds: {figures(rule, data, mask)}")
        print(f"{'':17} learned, leave-one-school-out: {figures((held >= threshold) & strong, data, mask)}")
    mean, scale, model = fit(x, y)
    fitted = decision.Decision(runtime.embedder.name, tuple(mean.tolist()), tuple(scale.tolist()), tuple(model.coef_[0].tolist()),
                               float(model.intercept_[0]), threshold)
    if kept:
        k = np.array([fitted.answers(dict(zip(decision.FEATURES, r["x"])), floor) for r in kept])
        everything = np.ones(len(kept), bool)
        print(f"{'kept sets':17} hand-set thresholds: {figures(np.array([r['rule'] for r in kept]), kept, everything)}")
        print(f"{'':17} learned (fitted on all the sets): {figures(k, kept, everything)}")
    target = decision.path_for(runtime.embedder.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(fitted.to_json(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
