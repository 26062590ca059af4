"""Word-level matching: each content word of a question against its nearest word in a clause.

A sentence embedding blurs a clause into one point, so "Who runs the school
Facebook page?" lands nearer the clause that lists the page than the one that
says who manages it. The same model also gives a vector for every word piece,
in its context. A clause scores by how well each of the question's content
pieces finds a close piece in it (the best cosine), averaged with rare pieces
weighing more (IDF over every indexed clause): late interaction, as ColBERT
scores passages, with the embedding model the index already uses.

Two layers of the model give each piece a vector. A middle layer keeps a word
close to its own meaning and ranks clauses best; the last layer, shaped for the
sentence vector, tells better whether the best clause answers the question at
all. So clauses are ranked with the first (`vectors`) and the candidates judged
with the second (`last`); for models without a chosen middle layer they are the same.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

FILE = "tokens.npz"
BATCH = 256  # chunks per call: the model's padded word vectors for a whole trust would not fit in memory
_BLAS_LOCK = threading.Lock()  # the thread limit is process-wide: one product at a time sets and restores it


@dataclass(frozen=True)
class TokenVectors:
    """The content word pieces of one text: their vocabulary ids and unit-length vectors from two layers."""

    ids: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, dimension), from the word layer: for ranking
    last: np.ndarray  # float32 (n, dimension), from the last layer: for judging coverage (may be `vectors` itself)
    layer: int | None = None  # the model layer of `vectors`; None: the last


@dataclass(frozen=True)
class TokenTable:
    """Every chunk's content pieces, in chunk order: chunk i owns rows offsets[i]:offsets[i + 1]."""

    ids: np.ndarray  # int64 (rows,)
    vectors: np.ndarray  # float32 (rows, dimension)
    last: np.ndarray  # float32 (rows, dimension)
    offsets: np.ndarray  # int64 (chunks + 1,)
    layer: int | None  # the model layer of `vectors`; None: the last

    @classmethod
    def join(cls, parts: Sequence[TokenVectors], dimension: int, layer: int | None) -> TokenTable:
        """One table from the chunks' pieces, which must all come from `layer`."""
        if any(part.layer != layer for part in parts):
            raise ValueError(f"word vectors of layers {sorted({str(p.layer) for p in parts})} cannot share a table of layer {layer}")
        sizes = [len(part.ids) for part in parts]
        empty = np.zeros((0, dimension), np.float32)
        vectors = np.concatenate([part.vectors for part in parts]).astype(np.float32) if parts else empty
        last = vectors
        if layer is not None and parts:
            last = np.concatenate([part.last for part in parts]).astype(np.float32)
        return cls(
            ids=np.concatenate([part.ids for part in parts]).astype(np.int64) if parts else np.zeros(0, np.int64),
            vectors=vectors,
            last=last,
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            layer=layer,
        )

    def chunk(self, ordinal: int) -> TokenVectors:
        start, end = self.offsets[ordinal], self.offsets[ordinal + 1]
        return TokenVectors(self.ids[start:end], self.vectors[start:end], self.last[start:end], self.layer)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def save(self, folder: Path) -> None:
        # Half precision halves the file; a cosine needs no more. `vectors` holds the last layer, as it did
        # before layers were chosen, so an older release rolled back to still reads what it expects;
        # a middle layer's vectors are stored beside it.
        extra = {"words": self.vectors.astype(np.float16)} if self.layer is not None else {}
        np.savez(Path(folder) / FILE, ids=self.ids.astype(np.int32), vectors=self.last.astype(np.float16),
                 offsets=self.offsets, layer=np.int64(-1 if self.layer is None else self.layer), **extra)

    @classmethod
    def load(cls, folder: Path) -> TokenTable | None:
        """The stored table, or None for an index built before word matching (the retriever computes it)."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        with np.load(path) as data:
            # a table stored before layers were recorded has the last layer only
            layer = int(data["layer"]) if "layer" in data.files else -1
            last = data["vectors"].astype(np.float32)
            vectors = data["words"].astype(np.float32) if layer >= 0 else last
            table = cls(data["ids"].astype(np.int64), vectors, last, data["offsets"].astype(np.int64), None if layer < 0 else layer)
        offsets = table.offsets
        if (table.ids.ndim != 1 or table.vectors.ndim != 2 or offsets.ndim != 1 or not len(offsets) or offsets[0] != 0
                or (np.diff(offsets) < 0).any() or offsets[-1] != len(table.ids) or len(table.ids) != len(table.vectors)
                or table.last.shape != table.vectors.shape):
            raise ValueError("word vectors and their offsets disagree")
        return table


class WordMatcher:
    """Scores the chunks of one school for a question's content pieces."""

    def __init__(self, table: TokenTable, ordinals: np.ndarray, idf: dict[int, float], unseen_idf: float):
        dimension = table.vectors.shape[1]
        none = np.zeros((1, dimension), np.float32)
        parts = [table.chunk(int(o)) for o in ordinals]
        # a chunk with no content piece gets one zero row: it matches nothing, and every chunk keeps a segment
        school = TokenTable.join([p if len(p.ids) else TokenVectors(np.array([-1]), none, none, table.layer) for p in parts],
                                 dimension, table.layer)
        self._vectors, self._last = school.vectors, school.last  # the same array when ranking uses the last layer
        self._starts = school.offsets[:-1]
        self._idf, self._unseen_idf = idf, unseen_idf

    def scores(self, question: TokenVectors) -> tuple[np.ndarray, np.ndarray]:
        """Per chunk: the IDF-weighted mean, over the question's pieces, of the best cosine to a piece of the
        chunk; with the word layer (for ranking) and with the last layer (for judging)."""
        if not len(question.ids) or not len(self._starts):
            return np.zeros(len(self._starts), np.float32), np.zeros(len(self._starts), np.float32)
        weights = np.array([self._idf.get(int(i), self._unseen_idf) for i in question.ids], np.float32)
        layers = [(question.vectors, self._vectors)]
        if self._last is not self._vectors:  # one product, not two, when ranking uses the last layer
            layers.append((question.last, self._last))
        out = []
        with _BLAS_LOCK, _blas().limit(limits=1, user_api="blas"):
            for mine, theirs in layers:
                best = np.maximum.reduceat(mine @ theirs.T, self._starts, axis=1)  # (pieces, chunks)
                out.append((weights @ best) / weights.sum())
        return out[0], out[-1]


@lru_cache(maxsize=1)
def _blas():
    """A product this small is fastest on one thread; BLAS threads left spinning afterwards would also
    slow down the model's next call (p95 latency 111 ms against 24 ms in bench/bench_retrieval.py)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def embed_words(embedder, texts: Sequence[str]) -> list[TokenVectors]:
    """`embedder.embed_tokens` over many texts, a batch at a time."""
    return [pieces for start in range(0, len(texts), BATCH) for pieces in embedder.embed_tokens(texts[start: start + BATCH])]


def inverse_document_frequency(table: TokenTable) -> tuple[dict[int, float], float]:
    """log(1 + N / (1 + df)) per piece id over all chunks, and the weight of a piece no chunk has."""
    chunks = len(table)
    frequency: Counter[int] = Counter()
    for ordinal in range(chunks):
        frequency.update(set(table.chunk(ordinal).ids.tolist()))
    return {piece: math.log(1 + chunks / (1 + df)) for piece, df in frequency.items()}, math.log(1 + chunks)
