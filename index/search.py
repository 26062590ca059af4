"""Hybrid retrieval restricted to one school's policies.

Dense: every sentence and list item of a chunk is embedded (with its heading
and lead-in), FAISS searches only the asking school's passages, and a chunk
scores as its best passage. Words: each content word of the question is matched
to its nearest word in the chunk, in context (index/tokens.py). Lexical: term
coverage over the chunk, with staff vocabulary expanded. They are blended into
one score, a weighted mean.
"""

from __future__ import annotations

from index.catalogue import UnknownSchool

import logging
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from index.areas import Areas, NearestArea
from index.build import whole_text
from index.embed import Embedder
from index.lexical import GENERIC, LexicalIndex, Synonyms, tokens, words
from index.model import Chunk, Hit
from index.store import StoredIndex
from index.tokens import TokenTable, TokenVectors, WordMatcher, embed_words, inverse_document_frequency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weights:
    """How the signals blend into a weighted mean; measured with `policybot eval` on the question sets.

    The word signal carries most of the weight: across 14 question sets it moved hit@1 from 0.66 to 0.74
    with the bundled model and from 0.74 to 0.85 with all-mpnet-base-v2, over a broad range of weights (2-6).
    """

    whole: float = 0.5  # similarity to the whole chunk (with its heading)
    part: float = 0.5  # similarity to its best sentence or list item
    coverage: float = 0.35  # share of the question's weighted terms (or their synonyms) in the chunk
    bm25: float = 0.0  # BM25, normalised to the best chunk for the question
    words: float = 3.0  # each question word's best match among the chunk's words, IDF-weighted

    @property
    def total(self) -> float:
        return self.whole + self.part + self.coverage + self.bm25 + self.words


@dataclass(frozen=True)
class Encoded:
    """A question through the model: its sentence vector and its word pieces."""

    vector: np.ndarray  # (dimension,) unit length
    pieces: TokenVectors


@dataclass(frozen=True)
class Match:
    """A school's best chunks for a question, and what else the question is near."""

    hits: list[Hit]
    nearest_passage: float  # the question's best cosine to any passage of the school's policies
    area: NearestArea | None  # the nearest area of school life of `index/areas.yaml`
    encoded: Encoded | None = None

    @property
    def area_lead(self) -> float:
        """How much nearer the question is to that area than to anything in the school's policies."""
        return self.area.similarity - self.nearest_passage if self.area is not None else float("-inf")


@dataclass
class _School:
    chunk_ordinals: np.ndarray  # ordinals into StoredIndex.chunks
    passage_ids: np.ndarray
    lexical: LexicalIndex
    vocabulary: frozenset[str]
    words: WordMatcher


class Retriever:
    def __init__(self, stored: StoredIndex, embedder: Embedder, synonyms: Synonyms | None = None, weights: Weights = Weights(),
                 areas: Areas | None = None, reference_vectors=None):
        self.stored = stored
        self.embedder = embedder
        self.synonyms = synonyms or Synonyms.load()
        self.areas = areas if areas is not None else _shipped_areas()
        self.reference_vectors = reference_vectors  # cached vectors of fixed texts (the areas): index/vector_cache.py
        self.weights = weights
        self._schools: dict[str, _School] = {}
        self._first_passage: dict[int, int] = {}
        for position, ordinal in enumerate(stored.passage_chunk):
            self._first_passage.setdefault(int(ordinal), position)
        ordinals: dict[str, list[int]] = defaultdict(list)
        for ordinal, chunk in enumerate(stored.chunks):
            ordinals[chunk.school].append(ordinal)
        schools_of_passages = np.array([stored.chunks[i].school for i in stored.passage_chunk]) if len(stored.passage_chunk) else np.array([])
        table = stored.tokens if stored.tokens is not None and stored.tokens.layer == embedder.word_layer else _word_vectors(stored, embedder)
        idf, unseen_idf = inverse_document_frequency(table)
        for school, members in ordinals.items():
            texts = [lexical_text(stored.chunks[i]) for i in members]
            self._schools[school] = _School(
                chunk_ordinals=np.asarray(members, dtype=np.int64),
                passage_ids=np.flatnonzero(schools_of_passages == school).astype(np.int64),
                lexical=LexicalIndex(texts),
                vocabulary=frozenset(t for text in texts for t in tokens(text)),
                words=WordMatcher(table, np.asarray(members, dtype=np.int64), idf, unseen_idf),
            )

    @property
    def schools(self) -> tuple[str, ...]:
        return tuple(sorted(self._schools))

    def search(self, question: str, school: str, k: int = 5) -> list[Hit]:
        return self.match(question, school, k).hits

    def encode(self, question: str) -> Encoded:
        """The question through the model once: its sentence vector (retrieval, the area check and the safeguarding
        gate all read it) and its word pieces."""
        vector, pieces = self.embedder.embed_question(question)
        return Encoded(vector[0], pieces[0])

    def match(self, question: str, school: str, k: int = 5, encoded: Encoded | None = None) -> Match:
        """The k best chunks of the school's policies, best first, and how near the question is to them and
        to the nearest area of school life those policies may not cover (index/areas.py). `encoded`: the question
        already through the model (`encode`)."""
        if school not in self._schools:
            raise UnknownSchool(f"No policies are indexed for school {school!r}; indexed schools: {', '.join(self.schools) or 'none'}")
        data = self._schools[school]
        encoded = encoded or self.encode(question)
        # each question word's nearest word in each chunk: the word layer ranks, the last layer judges (index/tokens.py).
        # Rewording the question with the synonym list before this helped the small model; with all-mpnet-base-v2 it
        # cost hit@1 (0.734 -> 0.712 on sets A1-A4, docs/answering.md), so the model sees the staff member's own words.
        word_scores, judging_scores = data.words.scores(encoded.pieces)
        dense = self._dense(encoded.vector[None, :], data)
        query_terms = tokens(question)
        expansion = [t for t in tokens(" ".join(self.synonyms.expand(question))) if t not in query_terms]
        bm25 = np.asarray(data.lexical.scores(query_terms, expansion))
        bm25_norm = bm25 / bm25.max() if bm25.size and bm25.max() > 0 else bm25
        w = self.weights
        hits: list[Hit] = []
        for position, ordinal in enumerate(data.chunk_ordinals):
            chunk = self.stored.chunks[ordinal]
            assert chunk.school == school  # never answer from another school's policy
            coverage = data.lexical.coverage(query_terms, position, expansion)
            whole, part, passage, parts = dense.get(int(ordinal), (0.0, 0.0, 0, ()))
            shared = w.whole * whole + w.part * part + w.coverage * coverage + w.bm25 * float(bm25_norm[position])
            score = (shared + w.words * float(word_scores[position])) / w.total
            confidence = (shared + w.words * float(judging_scores[position])) / w.total
            hits.append(Hit(chunk=chunk, score=score, confidence=confidence, dense=max(whole, part), lexical=coverage,
                            passage=passage, passage_scores=parts))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        nearest = max((max(whole, part) for whole, part, _, _ in dense.values()), default=0.0)
        return Match(hits[:k], nearest, self.areas.nearest(encoded.vector[None, :], self.embedder, self.reference_vectors), encoded)

    def unknown_share(self, question: str, school: str) -> float:
        """Share of the question's content words that this school's policies never use, nor any synonym of them.

        "Can I claim overtime?" asks about something the policy does not mention at all.
        """
        # numbers and codes ("Year 13s", "6B") name no subject
        terms = {t for t in tokens(" ".join(w for w in words(question) if w not in GENERIC)) if not any(c.isdigit() for c in t)}
        if not terms:
            return 0.0
        vocabulary = self._schools[school].vocabulary
        known = terms & vocabulary
        for group in self.synonyms.stemmed_groups():
            if group & terms and group & vocabulary:
                known |= group & terms
        return len(terms - known) / len(terms)

    def _dense(self, vector: np.ndarray, data: _School) -> dict[int, tuple[float, float, int, tuple[float, ...]]]:
        """Per chunk ordinal: the whole chunk's similarity, its best sentence or item's, which item that was, and
        every item's similarity in order (for choosing what to quote)."""
        import faiss

        if not len(data.passage_ids):
            return {}
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(data.passage_ids))
        scores, ids = self.stored.vectors.search(vector, int(len(data.passage_ids)), params=params)
        whole: dict[int, float] = {}
        parts: dict[int, dict[int, float]] = defaultdict(dict)
        for score, passage in zip(scores[0], ids[0]):
            if passage < 0:
                continue
            ordinal = int(self.stored.passage_chunk[passage])
            within = int(passage) - self._first_passage[ordinal]
            if within == 0:
                whole[ordinal] = float(score)
            else:
                parts[ordinal][within] = float(score)
        out = {}
        for ordinal, w in whole.items():
            items = parts.get(ordinal, {})
            if not items:  # a chunk of one sentence has only its whole-chunk passage, which is also its best part
                out[ordinal] = (w, w, 0, ())
                continue
            best = max(items, key=items.get)
            out[ordinal] = (w, items[best], best, tuple(items[i] for i in sorted(items)))
        return out


@lru_cache(maxsize=1)
def _shipped_areas() -> Areas:
    """index/areas.yaml, read once: every retriever (one per index version) shares its embedded areas."""
    return Areas.load()


def _word_vectors(stored: StoredIndex, embedder: Embedder) -> TokenTable:
    """An index built before word matching has no word vectors, or has them from another layer: compute them once, at load."""
    log.info("index has no word vectors of layer %s; computing them for %d chunks", embedder.word_layer, len(stored.chunks))
    return TokenTable.join(embed_words(embedder, [whole_text(chunk) for chunk in stored.chunks]), stored.manifest.dimension, embedder.word_layer)


def lexical_text(chunk: Chunk) -> str:
    return f"{chunk.heading_path}\n{chunk.context}\n{chunk.text}"
