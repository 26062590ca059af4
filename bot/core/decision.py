"""Whether the clause found answers the question: learned from many writers' questions, not hand-set.

A logistic regression over the signals the match already computes (how surely
the best clauses match, by how much the first leads, how much of the question
the policy never mentions, whether an area of school life that other policies
cover is nearer, whether a time/count/date/frequency question has a clause that
gives one, the question's length) gives the probability that the first clause
quoted answers it. At or above the threshold the bot answers; below, it shows
the nearest clauses or says the policies do not cover it (bot/core/answering.py). A match
weaker than the hand-set floor (coverage's min_score) never answers, whatever the
regression says.

Fitted per embedding model (a score means something else under each) by
`python -m bot.core.decision_fit`, on the development question sets and the
first-look sets, leave-one-school-out; the threshold is the one that maximises
right answers minus three times wrong ones over those held-out predictions
(docs/quality.md). A model with no fitted file, or settings that give
`answer_thresholds`, keep the hand-set thresholds of bot/core/coverage.py.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from bot.core.coverage import answer_type, gives_answer_type
from index.vector_cache import slug

log = logging.getLogger(__name__)

FOLDER = Path(__file__).with_name("decisions")
FEATURES = ("confidence", "first_confidence", "first_score", "score_lead", "confidence_lead", "unknown_share",
            "area_lead", "nearest_passage", "first_dense", "first_lexical", "asks_type", "gives_type", "words")


@dataclass(frozen=True)
class Decision:
    model: str  # the embedding model the signals come from
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float

    def probability(self, signals: dict[str, float]) -> float:
        z = self.intercept + sum(c * (float(signals[name]) - m) / s
                                 for name, m, s, c in zip(FEATURES, self.mean, self.scale, self.coef))
        return 1.0 / (1.0 + math.exp(-z))

    def answers(self, signals: dict[str, float], floor: float = 0.0) -> bool:
        """Answer when the first clause likely answers it; never below `floor`, the confidence under which a match
        is too weak to count at all (bot/core/coverage.py's min_score)."""
        return signals["confidence"] >= floor and self.probability(signals) >= self.threshold

    def to_json(self) -> dict:
        return {"model": self.model, "features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept, "threshold": self.threshold}


def path_for(model_name: str) -> Path:
    return FOLDER / f"{slug(model_name)}.json"


def decision_for(model_name: str) -> Decision | None:
    """The fitted decision for an embedding model; None when there is none (the hand-set thresholds then decide)."""
    path = path_for(model_name)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["model"] != model_name or tuple(data["features"]) != FEATURES:
            raise ValueError("fitted for another model or other signals")
        return Decision(model_name, tuple(data["mean"]), tuple(data["scale"]), tuple(data["coef"]),
                        float(data["intercept"]), float(data["threshold"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the answer decision %s (%s); the hand-set thresholds decide", path.name, exc)
        return None


def signals(text: str, match, unknown_share: float, min_score: float, quoted: int = 1) -> dict[str, float]:
    """What the decision reads of a question's match (index/search.py's Match, hits best first), when the first
    `quoted` clauses would be quoted: their lead is over the best clause left out."""
    hits = match.hits
    last, left_out = hits[quoted - 1], hits[quoted] if len(hits) > quoted else None
    return {
        "confidence": max(hit.confidence for hit in hits),
        "first_confidence": hits[0].confidence,
        "first_score": hits[0].score,
        "score_lead": last.score - (left_out.score if left_out else 0.0),
        "confidence_lead": max(h.confidence for h in hits[:quoted]) - (left_out.confidence if left_out else 0.0),
        "unknown_share": unknown_share,
        "area_lead": max(match.area_lead, -1.0),
        "nearest_passage": match.nearest_passage,
        "first_dense": hits[0].dense,
        "first_lexical": hits[0].lexical,
        "asks_type": float(answer_type(text) is not None),
        "gives_type": float(gives_answer_type(text, (h.chunk.text for h in hits if h.confidence >= min_score))),
        "words": math.log1p(len(text.split())),
    }
