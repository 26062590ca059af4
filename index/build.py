"""Build an index folder from a policies folder: load, clean, chunk, embed, store."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.catalogue import Catalogue, load_catalogue
from index.chunk import chunk_document, passages
from index.clean import clean
from index.embed import Embedder
from index.load import load_document
from index.model import Chunk
from index import store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    school: str
    policy: str
    path: Path
    title: str


def sources(policies_dir: Path, catalogue: Catalogue) -> list[Source]:
    out = []
    for school_id, school in sorted(catalogue.schools.items()):
        for policy in school.policies:
            out.append(Source(school_id, policy.id, Path(policies_dir) / policy.file, policy.title))
    return out


def chunk_source(source: Source) -> tuple[list[Chunk], str]:
    """Chunks of one policy file and the SHA-256 of its bytes."""
    document = load_document(source.path, source.school, source.policy)
    digest = hashlib.sha256(source.path.read_bytes()).hexdigest()
    return chunk_document(document, clean(document.text)), digest


def embedding_texts(chunk: Chunk) -> list[str]:
    """What the embedder sees for a chunk: the whole chunk, then each sentence or list item."""
    prefix = f"{chunk.heading_path}: " if chunk.heading else ""
    if chunk.context:
        prefix += chunk.context + " "
    parts = passages(chunk)
    texts = [prefix + chunk.text.replace("\n- ", " ")]
    if len(parts) > 1:
        texts.extend(prefix + part for part in parts)
    return texts


def build(policies_dir: Path, out_dir: Path, embedder: Embedder) -> store.Manifest:
    catalogue = load_catalogue(policies_dir)
    chunks: list[Chunk] = []
    entries: list[store.DocumentEntry] = []
    for source in sources(policies_dir, catalogue):
        doc_chunks, digest = chunk_source(source)
        offset = len(chunks)
        chunks.extend(_renumber(doc_chunks, offset))
        entries.append(store.DocumentEntry(source.school, source.policy, str(source.path), digest, len(doc_chunks), source.title))
    texts: list[str] = []
    passage_chunk: list[int] = []
    for ordinal, chunk in enumerate(chunks):
        for text in embedding_texts(chunk):
            texts.append(text)
            passage_chunk.append(ordinal)
    vectors = embedder.embed(texts)
    manifest = store.Manifest(model=embedder.name, dimension=int(vectors.shape[1]), documents=tuple(entries))
    store.save(out_dir, manifest, chunks, np.asarray(passage_chunk, dtype=np.int64), vectors)
    log.info("built index: %d documents, %d chunks, %d passages", len(entries), len(chunks), len(texts))
    return manifest


def _renumber(chunks: list[Chunk], offset: int) -> list[Chunk]:
    from dataclasses import replace

    return [replace(chunk, ordinal=offset + i) for i, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class Found:
    """Every policy file to index: the catalogue's, then files in a school's folder without an entry."""

    sources: list[Source]
    needs_metadata: tuple[str, ...] = ()
    needs_metadata_details: tuple[dict, ...] = ()


def all_sources(policies_dir: Path, catalogue: Catalogue) -> Found:
    """`sources` plus the uncatalogued files in policies/<school>/, titled from their header where possible."""
    import re

    from index.formats import header_metadata
    from index.load import supported_suffixes

    listed = sources(policies_dir, catalogue)
    known = {source.path.resolve() for source in listed}
    extra: list[Source] = []
    details: list[dict] = []
    suffixes = set(supported_suffixes())
    for school_id, school in sorted(catalogue.schools.items()):
        folder = Path(policies_dir) / school_id
        if not folder.is_dir():
            continue
        ids = {policy.id for policy in school.policies}
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith((".", "~$")) or path.resolve() in known:
                continue
            if path.suffix.lower() not in suffixes:
                continue
            policy_id = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "policy"
            while policy_id in ids:
                policy_id += "-file"
            ids.add(policy_id)
            meta = header_metadata(load_document(path, school_id, policy_id).text)
            title = meta.get("title", path.stem)
            extra.append(Source(school_id, policy_id, path, title))
            details.append({"school": school_id, "policy": policy_id, "file": str(path.relative_to(policies_dir)), **meta, "title": title})
    return Found(listed + extra, tuple(d["file"] for d in details), tuple(details))
