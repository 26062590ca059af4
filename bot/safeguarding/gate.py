"""The safeguarding gate: does a message raise a concern about a child, or about an adult's conduct, and whose is it?

Learned, not written as rules. Every example message (bot/safeguarding/examples/,
thousands of concerns and ordinary messages from many writers, plus a DSL's own
files) is embedded with the gate's model, and three logistic regressions are
fitted on those vectors:

- concern: how likely the message raises a concern at all;
- recipient: who it is about, so where it goes: the DSL (a child's welfare,
  child-on-child abuse included), the headteacher (any adult who works or
  volunteers with the school's children) or the chair of governors (the
  headteacher, principal or head of school, a head who is also the DSL included);
- category: the KCSIE category, for the alert.

The gate reads each message twice: with its own small model, all-MiniLM-L6-v2
with a low-rank adapter fine-tuned on the examples (bot/safeguarding/finetune.py,
SetFit-style), which places messages for the same recipient near each other
(without the adapter file it is the plain model); and with the answer model
(`reader`, all-mpnet-base-v2 by default), whose vector of the question retrieval
has already computed. Whether a message is a concern is read from the gate's own
vector; who it is about, from both side by side: the second reading was worth
about four points of right route leave-one-writer-out (docs/safeguarding.md). A message is judged by its own sentence vector and,
when it is long, by each window of sentences too; its likeliest part decides. At or above
`Thresholds.concern` it is a concern and is forwarded at once; at or above
`Thresholds.unsure` the answer offers a one-tap report; below, nothing. The
thresholds were chosen leave-one-writer-out (docs/safeguarding.md).

Fitting takes seconds and is cached by the examples and the model; example
vectors are cached too (index/vector_cache.py), so a start embeds only what is new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from bot.safeguarding.examples import Example, ExamplesError
from bot.safeguarding.noise import noise_examples
from index.vector_cache import VectorCache, slug

log = logging.getLogger(__name__)

RECIPIENTS = ("dsl", "head", "chair")
SHIPPED_VECTORS = Path(__file__).with_name("vectors")
GATE_MODEL = "all-MiniLM-L6-v2"  # the gate's own small model, fine-tuned for it (bot/safeguarding/finetune.py)
ADAPTER = Path(__file__).with_name("adapter") / "all-MiniLM-L6-v2-gate.npz"
FIT_VERSION = 5  # bump when the fitting changes, so cached fits are redone


@dataclass(frozen=True)
class Thresholds:
    concern: float = 0.60  # forwarded at once at or above this concern probability
    unsure: float = 0.25  # the answer offers "Report this to the DSL" at or above this
    window_chars: int = 400  # a longer message is judged by windows of sentences this long too
    c: float = 10.0  # the logistic regressions' inverse regularisation


@dataclass(frozen=True)
class Assessment:
    """The gate's verdict on one message."""

    level: str = "none"  # "concern" (forward now) | "unsure" (offer the report) | "none"
    route: str | None = None  # "dsl" | "staff-allegation"
    about_head: bool = False  # a staff allegation about the headteacher: the chair of governors' route
    categories: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # one per category: why (shown to the DSL)
    probability: float = 0.0

    @property
    def escalate(self) -> bool:
        return self.level == "concern"

    @property
    def unsure(self) -> bool:
        return self.level == "unsure"

    @property
    def recipient(self) -> str:
        """"dsl", "head" or "chair"."""
        if self.route == "staff-allegation":
            return "chair" if self.about_head else "head"
        return "dsl"

    @classmethod
    def reported(cls, recipient: str = "dsl", category: str = "reported-by-staff") -> Assessment:
        """A concern a member of staff reported themselves (the report button, `/policy report`): no classifier."""
        route, about_head = {"dsl": ("dsl", False), "head": ("staff-allegation", False), "chair": ("staff-allegation", True)}[recipient]
        return cls("concern", route, about_head, (category,), ("reported directly by the member of staff",), 1.0)


@dataclass(frozen=True)
class _Heads:
    """The fitted regressions as plain arrays: numpy does the rest (no scikit-learn once fitted)."""

    concern_w: np.ndarray  # (own dimension,): reads the gate's own model's columns
    concern_b: float
    recipient_w: np.ndarray  # (3, dimension): reads every column, the answer model's too; rows in RECIPIENTS order
    recipient_b: np.ndarray
    categories: tuple[str, ...]
    category_w: np.ndarray  # (categories, own dimension)
    category_b: np.ndarray

    def concern(self, vectors: np.ndarray) -> np.ndarray:
        own = vectors[..., : self.concern_w.shape[0]]
        return 1.0 / (1.0 + np.exp(-(own @ self.concern_w + self.concern_b)))

    def recipient(self, vector: np.ndarray) -> str:
        return RECIPIENTS[int(np.argmax(self.recipient_w @ vector + self.recipient_b))]

    def category(self, vector: np.ndarray) -> list[tuple[str, float]]:
        logits = self.category_w @ vector[: self.category_w.shape[1]] + self.category_b
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities)
        return [(self.categories[i], float(probabilities[i])) for i in order[:2]]


class SafeguardingGate:
    def __init__(self, embedder, examples: list[Example], cache_dir: Path, thresholds: Thresholds = Thresholds(),
                 reader=None, reader_cache: VectorCache | None = None):
        self.embedder = embedder
        self.reader = reader  # the answer model: its vector of a message sits beside the gate's own (None: own only)
        self.examples = examples
        self.thresholds = thresholds
        self._cache_dir = Path(cache_dir)
        self._caches = [VectorCache(embedder, self._cache_dir, shipped=shipped_vectors(embedder))]
        if reader is not None:  # one cache per model and folder: the runtime's, when it has one for the answer model
            self._caches.append(reader_cache or VectorCache(reader, self._cache_dir, shipped=shipped_vectors(reader)))
        self._lock = threading.Lock()

    @property
    def _models(self) -> list:
        return [self.embedder] + ([self.reader] if self.reader is not None else [])

    def warm(self) -> None:
        """Embed and fit now (start-up), not on the first message; and load the gate's model even when the fit comes
        from the cache (loading it took the first message 0.5-1 s, and every message queued behind it)."""
        self._heads  # noqa: B018
        for model in self._models:
            model.embed(["warm up"])

    def features(self, texts: list[str]) -> np.ndarray:
        """The rows the regressions read for reference texts: each model's cached vectors, side by side."""
        return np.hstack([cache.vectors(texts) for cache in self._caches])

    @staticmethod
    def _read(each, texts: list[str], vector: np.ndarray | None, model: str | None, first: bool) -> np.ndarray:
        """One model's rows for the texts being judged; `vector` (of the message itself, texts[0] when `first`, by
        the model named `model`) is reused, not embedded again."""
        if vector is None or model != each.name or not first:
            return np.asarray(each.embed(texts), np.float32)
        rest = each.embed(texts[1:]) if len(texts) > 1 else np.zeros((0, len(vector)), np.float32)
        return np.vstack([np.asarray(vector, np.float32).reshape(1, -1), rest])

    @cached_property
    def _heads(self) -> _Heads:
        with self._lock:
            return self.__dict__.get("_heads") or self._fit_or_load()

    def assess(self, text: str, vector: np.ndarray | None = None, model: str | None = None) -> Assessment:
        """The verdict on one message of any length. `vector`: its sentence vector from the embedding model named
        `model`, when the caller already has it (retrieval embeds the same text); used only when that is the
        gate's own model."""
        text = (text or "").strip()
        if not text:
            return Assessment()
        heads = self._heads
        texts = [text] + (windows(text, self.thresholds.window_chars) if len(text) > self.thresholds.window_chars else [])
        own = self._read(self.embedder, texts, vector, model, first=True)
        probabilities = heads.concern(own)
        best = int(np.argmax(probabilities))
        probability = float(probabilities[best])
        level = "concern" if probability >= self.thresholds.concern else "unsure" if probability >= self.thresholds.unsure else "none"
        if level == "none":
            return Assessment(probability=probability)
        # who it is about: the answer model's reading of the deciding part too (for the message itself, retrieval's)
        parts = [own[best]] + ([self._read(self.reader, [texts[best]], vector, model, first=best == 0)[0]] if self.reader else [])
        chosen = np.concatenate(parts)
        recipient = heads.recipient(chosen)
        route, about_head = ("dsl", False) if recipient == "dsl" else ("staff-allegation", recipient == "chair")
        named = heads.category(chosen)
        picked = [named[0]] + [c for c in named[1:] if c[1] >= 0.5 * named[0][1]]
        reasons = tuple(f"assessed by the gate: concern probability {probability:.2f}, category probability {p:.2f}" for _, p in picked)
        return Assessment(level, route, about_head, tuple(c for c, _ in picked), reasons, probability)

    # -- fitting -------------------------------------------------------------------------------

    def _fit_or_load(self) -> _Heads:
        key = self._fit_key()
        path = self._cache_dir / f"gate-{key}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    heads = _Heads(data["concern_w"], float(data["concern_b"]), data["recipient_w"], data["recipient_b"],
                                   tuple(str(c) for c in data["categories"]), data["category_w"], data["category_b"])
                if heads.concern_w.shape[0] != self.embedder.dimension:
                    raise ValueError("fitted on vectors of another shape")
                return heads
            except (OSError, ValueError, KeyError) as exc:
                log.warning("refitting the safeguarding gate: its cached fit %s is unreadable (%s)", path.name, type(exc).__name__)
        training = self.examples + noise_examples()  # text with no words is no concern (bot/safeguarding/noise.py)
        heads = fit(self.features([e.text for e in training]), training, self.thresholds.c, own=self.embedder.dimension)
        _save(path, heads)
        return heads

    def _fit_key(self) -> str:
        rows = [(e.text, e.concern, e.route, e.about_head, e.category) for e in self.examples]
        identity = json.dumps([FIT_VERSION, [m.name for m in self._models], self.thresholds.c, sorted(rows, key=repr)])
        return hashlib.sha256(identity.encode()).hexdigest()[:20]


def shipped_vectors(model) -> list[Path]:
    """The shipped vectors of the examples for a model (bot/safeguarding/vectors/), when there are any."""
    return sorted(SHIPPED_VECTORS.glob(f"{slug(model.name)}.npz"))


def fit(vectors: np.ndarray, examples: list[Example], c: float, own: int | None = None) -> _Heads:
    """The three regressions, fitted on the examples' vectors: the recipient on every column, concern and category on
    the first `own` (the gate's own model's; all when None)."""
    from sklearn.linear_model import LogisticRegression

    log.info("fitting the safeguarding gate on %d examples (%d concerns)", len(examples), sum(e.concern for e in examples))
    full, vectors = vectors, vectors[:, :own]
    concern = np.array([e.concern for e in examples])
    gate = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(vectors, concern)
    concerns = [i for i, e in enumerate(examples) if e.concern and e.recipient is not None]
    recipients = np.array([examples[i].recipient for i in concerns])
    if set(recipients) != set(RECIPIENTS):
        raise ExamplesError("The safeguarding examples need concerns for the DSL, about staff and about the headteacher; "
                            "the shipped examples have all three: keep bot/safeguarding/examples/ in place")
    route = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(full[concerns], recipients)
    rows = [list(route.classes_).index(r) for r in RECIPIENTS]
    route_w, route_b = route.coef_[rows], route.intercept_[rows]
    labelled = [i for i, e in enumerate(examples) if e.concern and e.category]
    names = np.array([examples[i].category for i in labelled])
    category = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(vectors[labelled], names)  # a category a DSL adds with a few examples still wins its own cases
    return _Heads(gate.coef_[0].astype(np.float32), float(gate.intercept_[0]), route_w.astype(np.float32), route_b.astype(np.float32),
                  tuple(str(n) for n in category.classes_), category.coef_.astype(np.float32), category.intercept_.astype(np.float32))


def _save(path: Path, heads: _Heads) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".gate-", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            np.savez(temporary, concern_w=heads.concern_w, concern_b=heads.concern_b, recipient_w=heads.recipient_w,
                     recipient_b=heads.recipient_b, categories=np.array(heads.categories), category_w=heads.category_w,
                     category_b=heads.category_b)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not cache the safeguarding gate's fit in %s (%s); it is fitted again next start", path.parent, exc)


def windows(text: str, size: int = 400) -> list[str]:
    """Sentence-packed windows of at most `size` characters (a longer sentence is cut with overlap)."""
    text = re.sub(r"[ \t\r\f\v]+", " ", text).strip()
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        sentence = sentence.strip()
        while len(sentence) > size:
            cut = sentence.rfind(" ", size // 2, size)
            cut = cut if cut > 0 else size
            pieces.append(sentence[:cut])
            sentence = sentence[max(cut - size // 4, 1):].strip()  # overlap so a phrase on the cut is seen whole
        if sentence:
            pieces.append(sentence)
    out, current = [], ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > size:
            out.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        out.append(current)
    return out
