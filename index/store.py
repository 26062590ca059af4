"""Persist an index as a folder of plain files with a manifest.

    manifest.json   model, dimension, per-document content hashes, counts
    chunks.jsonl    one chunk per line (the quotable text and its citation)
    passages.json   for each embedded passage, the ordinal of its chunk
    vectors.faiss   a FAISS inner-product index over the passage vectors
    tokens.npz      each chunk's content word pieces and their vectors (index/tokens.py)

Loading refuses a folder built with another embedding model.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import dataclasses
import datetime as dt
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.model import Chunk
from index.tokens import TokenTable

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class IndexNotReady(PolicyBotError):
    """The index folder is missing, corrupt, or built with another model."""


@dataclass(frozen=True)
class DocumentEntry:
    school: str
    policy: str
    path: str
    sha256: str
    chunks: int
    title: str = ""


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    documents: tuple[DocumentEntry, ...]
    built_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    format: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        docs = tuple(DocumentEntry(**doc) for doc in raw.pop("documents"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(documents=docs, **{k: v for k, v in raw.items() if k in known})  # a newer release may add fields


@dataclass(frozen=True)
class StoredIndex:
    manifest: Manifest
    chunks: tuple[Chunk, ...]
    passage_chunk: np.ndarray  # int32: passage position -> chunk ordinal in `chunks`
    vectors: object  # faiss.Index
    tokens: TokenTable | None = None  # None: built before word matching; the retriever computes it


def save(folder: Path, manifest: Manifest, chunks: list[Chunk], passage_chunk: np.ndarray, vectors: np.ndarray,
         tokens: TokenTable | None = None) -> None:
    import faiss

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = faiss.IndexFlatIP(manifest.dimension)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(folder / "vectors.faiss"))
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as out:
        for chunk in chunks:
            out.write(json.dumps(dataclasses.asdict(chunk), ensure_ascii=False) + "\n")
    (folder / "passages.json").write_text(json.dumps([int(i) for i in passage_chunk]), encoding="utf-8")
    if tokens is not None:
        tokens.save(folder)
    # the manifest is written last: a folder without one is an unfinished build
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise IndexNotReady(f"No index at {folder}; run `policybot index` to build it.")
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        raise IndexNotReady(f"The index manifest {path} is corrupt ({exc}); run `policybot index` to rebuild it.") from None


def load(folder: Path, expected_model: str | None = None) -> StoredIndex:
    import faiss

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.format != FORMAT_VERSION:
        raise IndexNotReady(f"The index at {folder} has format {manifest.format}; run `policybot index` to rebuild it.")
    if expected_model is not None and manifest.model != expected_model:
        raise IndexNotReady(
            f"The index at {folder} was built with model {manifest.model!r}, but the bot is configured "
            f"for {expected_model!r}; run `policybot index` to rebuild it with the configured model."
        )
    try:
        chunks = tuple(
            Chunk(**{**row, "heading": tuple(row["heading"])})
            for row in map(json.loads, (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines())
        )
        passage_chunk = np.asarray(json.loads((folder / "passages.json").read_text(encoding="utf-8")), dtype=np.int64)
        vectors = faiss.read_index(str(folder / "vectors.faiss"))
        tokens = TokenTable.load(folder)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise IndexNotReady(f"The index at {folder} is corrupt ({type(exc).__name__}); run `policybot index` to rebuild it.") from None
    if vectors.d != manifest.dimension or vectors.ntotal != len(passage_chunk):
        raise IndexNotReady(f"The index at {folder} is inconsistent (vectors do not match the manifest); run `policybot index`.")
    if len(passage_chunk) and int(passage_chunk.max()) >= len(chunks):
        raise IndexNotReady(f"The index at {folder} is inconsistent (passages point past the chunks); run `policybot index`.")
    if tokens is not None and (len(tokens) != len(chunks) or tokens.vectors.shape[1] != manifest.dimension):
        raise IndexNotReady(f"The index at {folder} is inconsistent (word vectors do not match the chunks); run `policybot index`.")
    return StoredIndex(manifest, chunks, passage_chunk, vectors, tokens)


def resolve_current(folder: Path) -> Path:
    """The folder holding the index being served: the version named by `CURRENT` when there is
    one (see `index.publish`), otherwise the folder itself (a plain index folder)."""
    pointer = Path(folder) / "CURRENT"
    try:
        target = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return Path(folder)
    if not target:
        raise IndexNotReady(f"{pointer} is empty; run `policybot index` to publish an index.")
    return Path(folder) / target
