"""Lexical matching: stemmed tokens, staff-vocabulary expansion, BM25 scoring.

Dense embeddings find paraphrases; this stage rewards the exact terms a
question shares with a clause and knows that "ex-pupil", "former student"
and "past pupil" are the same person (see `synonyms.yaml`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

SYNONYMS_FILE = Path(__file__).with_name("synonyms.yaml")
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not of off on once only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself yourselves i'm i've
    it's don't can't am may might must shall also get got let us okay ok please thanks
    i'd i'll we're we've we'd we'll you're you've you'd you'll they're they've they'd they'll he's she's he'd she'd
    that's there's what's who's where's how's let's isn't aren't wasn't weren't doesn't didn't won't wouldn't
    shouldn't couldn't haven't hasn't hadn't mustn't ive dont cant wont isnt arent doesnt didnt
    policy policies school say says said""".split()
)
# Words that say nothing about a question's subject: ignored when asking whether a policy mentions it.
GENERIC = frozenset(
    """someone anyone anybody somebody anything something everything thing things who whose go goes going come comes
    make makes made happen happens happened think really actually one ones sort kind bit bits get gets getting
    tell know want need like way fine ever still even allowed able okay alright mean means please lot lots""".split()
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("’", "'"))


def tokens(text: str) -> list[str]:
    """Lower-cased, stemmed content words."""
    kept = [w for w in words(text) if w not in STOPWORDS]
    return _stemmer().stemWords(kept) if kept else []


@dataclass(frozen=True)
class Synonyms:
    """Staff vocabulary: `groups` of terms that mean the same thing, used everywhere; and looser
    `rewordings` (everyday phrasing: "spy on" for "monitor"), used only to reword a question for ranking."""

    groups: tuple[tuple[str, ...], ...]
    rewordings: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def load(cls, path: Path = SYNONYMS_FILE) -> Synonyms:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}

        def lists(key: str) -> tuple[tuple[str, ...], ...]:
            return tuple(tuple(str(term).lower() for term in group) for group in raw.get(key) or [])

        return cls(lists("groups"), lists("rewordings"))

    def stemmed_groups(self) -> tuple[frozenset[str], ...]:
        return _stemmed_groups(self.groups)

    def expand(self, text: str) -> list[str]:
        """The terms of every group that `text` mentions, other than those it already uses."""
        padded = _padded(text)
        extra: list[str] = []
        for group in self.groups:
            if any(_padded(term) in padded for term in group):
                extra.extend(term for term in group if f" {term} " not in padded)
        return extra

    def in_vocabulary(self, text: str, vocabulary: frozenset[str], loose: bool = False) -> str | None:
        """`text` with each staff term the vocabulary lacks replaced by a synonym it has ("ex-pupil" ->
        "former students" for a policy that only says that), so word matching sees the policy's words;
        None when every term it uses is the vocabulary's own. `loose`: the rewordings count as synonyms too."""
        padded = original = _padded(text)
        for group in _with_rewordings(self.groups, self.rewordings) if loose else self.groups:
            used = [term for term in group if _padded(term) in padded]
            # a term of stop words only ("during school") has no stems: it tells nothing about the vocabulary
            if not used or any(_term_tokens(term) and _term_tokens(term) <= vocabulary for term in used):
                continue
            known = next((term for term in group if _term_tokens(term) and _term_tokens(term) <= vocabulary), None)
            if known is not None:
                for term in sorted(used, key=len, reverse=True):
                    padded = padded.replace(_padded(term), f" {known} ", 1)
        return padded.strip() if padded != original else None


@lru_cache(maxsize=4096)
def _term_tokens(term: str) -> frozenset[str]:
    """A synonym term's stems, worked out once rather than for every question."""
    return frozenset(tokens(term))


def _padded(text: str) -> str:
    """Lower-case words joined by single spaces, with one space either side, for whole-phrase matching."""
    return " " + " ".join(words(text.replace("-", " "))) + " "


@lru_cache(maxsize=8)
def _with_rewordings(groups: tuple[tuple[str, ...], ...], rewordings: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """Each group joined by the rewordings that share a term with it, then the rewordings that join none."""
    merged = [list(group) for group in groups]
    for rewording in rewordings:
        joined = next((group for group in merged[: len(groups)] if set(group) & set(rewording)), None)
        if joined is None:
            merged.append(list(rewording))
        else:
            joined.extend(term for term in rewording if term not in joined)
    return tuple(tuple(group) for group in merged)


@lru_cache(maxsize=8)
def _stemmed_groups(groups: tuple[tuple[str, ...], ...]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(tokens(" ".join(group))) for group in groups)


class LexicalIndex:
    """BM25 over one school's chunks (a few hundred at most: plain Python is fast enough)."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75):
        self._docs = [Counter(tokens(doc)) for doc in documents]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._avg = (sum(self._lengths) / len(self._lengths)) if self._lengths else 1.0
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(doc.keys())
        n = len(self._docs)
        self.idf = {term: math.log(1 + (n - count + 0.5) / (count + 0.5)) for term, count in df.items()}
        self._k1, self._b = k1, b

    def scores(self, query_terms: Iterable[str], boost_terms: Iterable[str] = ()) -> list[float]:
        """BM25 for each document; expansion terms count half."""
        weights: dict[str, float] = {}
        for term in boost_terms:
            weights[term] = 0.5
        for term in query_terms:
            weights[term] = 1.0
        out = []
        for doc, length in zip(self._docs, self._lengths):
            norm = self._k1 * (1 - self._b + self._b * length / self._avg)
            total = 0.0
            for term, weight in weights.items():
                tf = doc.get(term)
                if tf:
                    total += weight * self.idf[term] * tf * (self._k1 + 1) / (tf + norm)
            out.append(total)
        return out

    def coverage(self, query_terms: Sequence[str], doc_index: int, boost_terms: Iterable[str] = ()) -> float:
        """Share of the question's (IDF-weighted) content terms that the document contains."""
        unique = set(query_terms)
        if not unique:
            return 0.0
        doc = self._docs[doc_index]
        boost = set(boost_terms)
        default_idf = max(self.idf.values(), default=1.0)
        total = sum(self.idf.get(t, default_idf) for t in unique)
        hit = sum(self.idf.get(t, default_idf) for t in unique if t in doc)
        # a question term counts as found when one of its synonyms is in the document
        if boost & doc.keys():
            hit = max(hit, min(total, hit + sum(self.idf.get(t, 0) for t in boost & doc.keys()) * 0.5))
        return hit / total
