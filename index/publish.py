"""Incremental, versioned, atomic publishing of the index.

    data/index/CURRENT               "versions/<id>": the version being served
    data/index/versions/<id>/        one complete `index.store` folder per build

A build reuses the chunks and vectors of every document whose bytes did not
change, re-chunks and re-embeds only the rest, writes a new version folder,
validates it (it loads, the dimension matches, every catalogue policy is there,
a smoke query per school finds something) and only then replaces `CURRENT`
with `os.replace`. A failed build leaves `CURRENT` untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import store
from index.build import PIPELINE, Reading, Source, all_sources, embedding_texts, read_source, whole_text
from index.catalogue import Catalogue, PolicyMeta, load_catalogue
from index.embed import Embedder
from index.tokens import TokenTable, TokenVectors
from index.errors import PolicyBotError
from index.model import Chunk

log = logging.getLogger(__name__)

POINTER = "CURRENT"
VERSIONS = "versions"
METADATA = "metadata.json"  # per version: policies read without a catalogue entry
CATALOGUE_JSON = "catalogue.json"  # per version: the catalogue it was built from, which answers and status use (index/live.py)
PIPELINE_FILE = "pipeline.txt"  # per version: `index.build.PIPELINE` of the code that chunked it (beside the manifest, which older releases read strictly)
KEEP = 5
EMBED_BATCH = 256


class PublishError(PolicyBotError):
    """The new index failed to build or validate; the served index is unchanged."""


@dataclass(frozen=True)
class ClauseChange:
    kind: str  # added | removed | reworded
    section: str
    old: str = ""
    new: str = ""


@dataclass(frozen=True)
class PolicyChange:
    school: str
    policy: str
    title: str
    clauses: tuple[ClauseChange, ...] = ()
    reading: Reading | None = None  # what a new or changed file became, for the admin to check it was read right


@dataclass(frozen=True)
class ChangeReport:
    added: tuple[PolicyChange, ...] = ()
    changed: tuple[PolicyChange, ...] = ()
    removed: tuple[PolicyChange, ...] = ()
    unchanged: int = 0
    needs_metadata: tuple[str, ...] = ()  # files indexed without a catalogue entry
    not_indexed: tuple[tuple[str, str], ...] = ()  # (file, why): every other file under the policies folder
    embedded: int = 0  # passages embedded by this build
    reused: int = 0  # passages whose vectors were reused
    version: str = ""
    published: bool = False
    dry_run: bool = False
    seconds: float = 0.0
    rechunked: bool = False  # the current index was chunked by other code, so every policy was chunked again

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        lines = []
        if self.dry_run:
            lines.append("Dry run: nothing was published.")
        elif self.published:
            lines.append(f"Published index version {self.version} ({self.embedded} passages embedded, {self.reused} reused, {self.seconds:.1f}s).")
        else:
            lines.append(f"No changes: still serving {self.version or 'the current index'}.")
        if self.rechunked:
            done = "would be" if self.dry_run else "was"
            lines.append(f"Every policy {done} chunked again: the index was built by another version of PolicyBot's chunking code.")
        for label, policies in (("Added", self.added), ("Changed", self.changed), ("Removed", self.removed)):
            for p in policies:
                lines.append(f"{label}: {p.school}/{p.policy} ({p.title})")
                if p.reading is not None:
                    lines.extend("  " + line for line in outline(p.reading, p.school, brief=True))
                for c in p.clauses:
                    where = f"clause {c.section}" if c.section else "unnumbered text"
                    if c.kind == "reworded":
                        old, new = _difference(c.old, c.new)
                        lines.append(f"  reworded {where}: {old!r} -> {new!r}")
                    else:
                        lines.append(f"  {c.kind} {where}: {_short(c.new or c.old)!r}")
        lines.append(f"Unchanged: {self.unchanged} policies.")
        for path in self.needs_metadata:
            lines.append(f"Needs metadata: {path} has no entry in catalogue.yaml (title and dates read from the document).")
        for path, why in self.not_indexed:
            lines.append(f"Not indexed: {path}: {why}.")
        return "\n".join(lines)


def outline(reading: Reading, school: str, brief: bool = False, full: bool = False) -> list[str]:
    """What a document became: its clauses and headings, and what was dropped as noise. `brief` for the index report
    (counts, headings and the first few dropped lines); every clause for `policybot show`, cut to a line unless `full`."""
    headings = reading.headings
    lines = [f"{len(reading.chunks)} clauses under {len(headings)} headings" + (": " + "; ".join(_short(h, 60) for h in headings[:12])
                                                                              + ("; …" if len(headings) > 12 else "") if brief and headings else "")]
    if not brief:
        for chunk in reading.chunks:
            where = chunk.section or "-"
            heading = _short(chunk.heading_path, 80) or "(no heading)"
            if full:
                lines.append(f"  {where:>6}  {heading}:")
                lines.extend(f"          {line}" for line in textwrap.wrap(" ".join(chunk.text.split()), 96))
            else:
                lines.append(f"  {where:>6}  {heading}: {_short(chunk.text, 90)!r}")
    if reading.dropped:
        reasons = Counter(reason for reason, _ in reading.dropped)
        lines.append(f"dropped as noise: {len(reading.dropped)} lines (" + ", ".join(f"{r} {n}" for r, n in reasons.items()) + ")")
        shown = reading.dropped[:3] if brief else reading.dropped
        lines.extend(f"  {reason}: {text if full else _short(text, 90)!r}" for reason, text in shown)
        if brief and len(reading.dropped) > len(shown):
            lines.append(f"  … `policybot show {school}` lists them all")
    else:
        lines.append("dropped as noise: nothing")
    return lines


def _difference(old: str, new: str, context: int = 4) -> tuple[str, str]:
    """The changed words of a reworded clause, with a few words either side."""
    a, b = old.split(), new.split()
    blocks = difflib.SequenceMatcher(None, a, b).get_opcodes()
    changes = [op for op in blocks if op[0] != "equal"]
    if not changes:
        return _short(old), _short(new)
    i1, j1 = max(0, changes[0][1] - context), max(0, changes[0][3] - context)
    i2, j2 = changes[-1][2] + context, changes[-1][4] + context
    def cut(words, start, end):
        return ("…" if start else "") + " ".join(words[start:end]) + ("…" if end < len(words) else "")
    return _short(cut(a, i1, i2), 200), _short(cut(b, j1, j2), 200)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the version folders ----------------------------------------------------------------------

def current_version(index_dir: Path) -> Path | None:
    pointer = Path(index_dir) / POINTER
    if pointer.is_file():
        return Path(index_dir) / pointer.read_text(encoding="utf-8").strip()
    return Path(index_dir) if (Path(index_dir) / store.MANIFEST).is_file() else None


def versions(index_dir: Path) -> list[Path]:
    folder = Path(index_dir) / VERSIONS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / store.MANIFEST).is_file())


def point_to(index_dir: Path, version: Path) -> None:
    """Make `version` current, atomically: readers see the old pointer or the new one, never neither."""
    index_dir = Path(index_dir)
    tmp = index_dir / f".{POINTER}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    tmp.write_text(f"{VERSIONS}/{version.name}\n", encoding="utf-8")
    os.replace(tmp, index_dir / POINTER)


def rollback(index_dir: Path) -> Path:
    """Serve the version published before the current one; returns it."""
    current = current_version(index_dir)
    older = [v for v in versions(index_dir) if current is None or v.name < current.name]
    if not older:
        raise PublishError(f"No earlier index version in {Path(index_dir) / VERSIONS} to roll back to.")
    point_to(index_dir, older[-1])
    log.info("rolled back to index version %s", older[-1].name)
    return older[-1]


def chunked_by_other_code(version: Path) -> bool:
    """Whether a version was chunked by code other than this (or before the fingerprint was recorded)."""
    try:
        return (Path(version) / PIPELINE_FILE).read_text(encoding="utf-8").strip() != PIPELINE
    except OSError:
        return True


def prune(index_dir: Path, keep: int = KEEP) -> list[Path]:
    current = current_version(index_dir)
    all_versions = versions(index_dir)
    doomed = [v for v in all_versions[: max(0, len(all_versions) - keep)] if current is None or v != current]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
    return doomed


def read_metadata(version: Path) -> list[dict]:
    path = Path(version) / METADATA
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


@contextmanager
def _build_lock(index_dir: Path):
    """One build at a time per index folder (a Slack reindex and a file watcher may race)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- building -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Previous:
    chunks: dict[tuple[str, str], list[Chunk]]
    vectors: dict[tuple[str, str], np.ndarray]  # passage vectors of each document, in order
    tokens: dict[tuple[str, str], list[TokenVectors]]  # word-piece vectors of each document's chunks, in order
    hashes: dict[tuple[str, str], str]
    titles: dict[tuple[str, str], str]
    version: str
    other_code: bool = False  # chunked by other code: nothing of it may be reused
    catalogue: Catalogue | None = None  # the catalogue it was published with
    other_layer: bool = False  # its word vectors come from another layer of the model: they are all re-embedded


def _previous(index_dir: Path, model: str, word_layer: int | None) -> _Previous:
    empty = _Previous({}, {}, {}, {}, {}, "")
    folder = current_version(index_dir)
    if folder is None:
        return empty
    try:
        stored = store.load(folder, expected_model=model)
    except store.IndexNotReady as exc:
        log.warning("ignoring the current index for reuse: %s", exc)
        return empty
    all_vectors = stored.vectors.reconstruct_n(0, stored.vectors.ntotal) if stored.vectors.ntotal else np.zeros((0, stored.manifest.dimension), np.float32)
    chunks: dict[tuple[str, str], list[Chunk]] = defaultdict(list)
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    tokens: dict[tuple[str, str], list[TokenVectors]] = defaultdict(list)
    for position, chunk in enumerate(stored.chunks):
        chunks[(chunk.school, chunk.policy)].append(chunk)
        if stored.tokens is not None:  # of another layer, none is reused: `other_layer` forces a full build
            tokens[(chunk.school, chunk.policy)].append(stored.tokens.chunk(position))
    for position, ordinal in enumerate(stored.passage_chunk):
        chunk = stored.chunks[int(ordinal)]
        rows[(chunk.school, chunk.policy)].append(position)
    return _Previous(
        chunks=dict(chunks),
        vectors={key: all_vectors[positions] for key, positions in rows.items()},
        tokens=dict(tokens),
        hashes={(d.school, d.policy): d.sha256 for d in stored.manifest.documents},
        titles={(d.school, d.policy): d.title for d in stored.manifest.documents},
        version=folder.name,
        other_code=chunked_by_other_code(folder),
        other_layer=stored.tokens is not None and stored.tokens.layer != word_layer,
        catalogue=_published_catalogue(folder),
    )


def _published_catalogue(folder: Path) -> Catalogue | None:
    try:
        return Catalogue.model_validate_json((Path(folder) / CATALOGUE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def publish(policies_dir: Path, index_dir: Path, embedder: Embedder, *, dry_run: bool = False,
            keep: int = KEEP, progress: bool | None = None, force: bool = False) -> ChangeReport:
    """Build what changed into a new version, validate it, make it current; return the change report."""
    started = time.perf_counter()
    policies_dir, index_dir = Path(policies_dir), Path(index_dir)
    with _build_lock(index_dir):
        catalogue = load_catalogue(policies_dir)
        found = all_sources(policies_dir, catalogue)
        previous = _previous(index_dir, embedder.name, embedder.word_layer)
        show = sys.stderr.isatty() if progress is None else progress
        rechunk = previous.other_code
        if rechunk:
            log.info("index %s was chunked by other code: re-chunking and re-embedding every policy", previous.version)
            force = True
        if previous.other_layer:  # a new word layer changes index/embed.py, so the pipeline check above usually fires first
            log.info("index %s has word vectors of another model layer: re-embedding them", previous.version)
            force = True

        documents: list[tuple[Source, list[Chunk], str, bool]] = []  # source, chunks, digest, reused
        readings: dict[tuple[str, str], Reading] = {}
        for source in _bar(found.sources, show, "reading policies"):
            key = (source.school, source.policy)
            if not source.path.is_file():
                raise PublishError(f"{source.path}: listed in catalogue.yaml but missing; add the file or remove its entry.")
            digest = hashlib.sha256(source.path.read_bytes()).hexdigest()
            if previous.hashes.get(key) == digest and key in previous.vectors and key in previous.tokens and not force:
                documents.append((source, previous.chunks[key], digest, True))
            else:
                readings[key] = reading = read_source(source)
                documents.append((source, reading.chunks, reading.digest, False))

        report = dataclasses.replace(_report(documents, previous, found.needs_metadata, dry_run, readings), rechunked=rechunk,
                                     not_indexed=found.not_indexed)
        if dry_run or (not report.has_changes and not force and previous.version and _same_titles(documents, previous)
                       and previous.catalogue == published(catalogue, found)):
            return dataclasses.replace(report, version=previous.version, seconds=time.perf_counter() - started)

        to_embed = [text for _, chunks, _, reused in documents if not reused for chunk in chunks for text in embedding_texts(chunk)]
        fresh, fresh_tokens = _embed(embedder, [c for _, chunks, _, reused in documents if not reused for c in chunks], show)
        fresh_tokens = iter(fresh_tokens)
        token_parts: list[TokenVectors] = []
        chunks_out: list[Chunk] = []
        passage_chunk: list[int] = []
        vector_parts: list[np.ndarray] = []
        entries: list[store.DocumentEntry] = []
        cursor = 0
        for source, chunks, digest, reused in documents:
            offset = len(chunks_out)
            for i, chunk in enumerate(chunks):
                chunks_out.append(dataclasses.replace(chunk, ordinal=offset + i))
                count = len(embedding_texts(chunk))
                passage_chunk.extend([offset + i] * count)
            if reused:
                vector_parts.append(previous.vectors[(source.school, source.policy)])
                token_parts.extend(previous.tokens[(source.school, source.policy)])
            else:
                token_parts.extend(next(fresh_tokens) for _ in chunks)
                count = sum(len(embedding_texts(c)) for c in chunks)
                vector_parts.append(fresh[cursor: cursor + count])
                cursor += count
            entries.append(store.DocumentEntry(source.school, source.policy, str(source.path), digest, len(chunks), source.title))
        dimension = embedder.dimension
        vectors = np.concatenate(vector_parts) if vector_parts else np.zeros((0, dimension), np.float32)
        if vectors.shape[1] != dimension:
            raise PublishError(f"Vectors have dimension {vectors.shape[1]} but the model gives {dimension}; delete {index_dir / VERSIONS} and run `policybot index` to rebuild from scratch.")
        manifest = store.Manifest(model=embedder.name, dimension=dimension, documents=tuple(entries))

        version_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]
        staging = index_dir / VERSIONS / f".building-{version_id}"
        try:
            store.save(staging, manifest, chunks_out, np.asarray(passage_chunk, dtype=np.int64), vectors, TokenTable.join(token_parts, dimension, embedder.word_layer))
            (staging / METADATA).write_text(json.dumps(found.needs_metadata_details, indent=2), encoding="utf-8")
            (staging / CATALOGUE_JSON).write_text(published(catalogue, found).model_dump_json(indent=1), encoding="utf-8")
            (staging / PIPELINE_FILE).write_text(PIPELINE + "\n", encoding="utf-8")
            validate(staging, embedder, catalogue)
            final = index_dir / VERSIONS / version_id
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        point_to(index_dir, final)
        prune(index_dir, keep)
        elapsed = time.perf_counter() - started
        log.info("published index %s: %d documents, %d embedded, %d reused passages in %.1fs",
                 version_id, len(entries), len(to_embed), len(vectors) - len(to_embed), elapsed)
        return dataclasses.replace(report, version=version_id, published=True, embedded=len(to_embed),
                                   reused=len(vectors) - len(to_embed), seconds=elapsed)


def published(catalogue: Catalogue, found) -> Catalogue:
    """The catalogue as published: catalogue.yaml, plus an entry for each file indexed without one (titled from its
    header), so that answers name every policy they quote."""
    extra: dict[str, list[PolicyMeta]] = defaultdict(list)
    for detail in found.needs_metadata_details:
        extra[detail["school"]].append(PolicyMeta(id=detail["policy"], file=detail["file"], title=detail["title"]))
    schools = {sid: school.model_copy(update={"policies": school.policies + tuple(extra.get(sid, ()))})
               for sid, school in catalogue.schools.items()}
    return Catalogue(schools=schools)


def _same_titles(documents, previous: _Previous) -> bool:
    return all(previous.titles.get((s.school, s.policy)) == s.title for s, *_ in documents)


def _embed(embedder: Embedder, chunks: list[Chunk], show: bool) -> tuple[np.ndarray, list[TokenVectors]]:
    """The passage vectors of the chunks, in `embedding_texts` order, and each chunk's word pieces. Each chunk's
    whole text goes through the model once for both its vector and its words; its sentences and items for their
    vectors only."""
    dimension = embedder.dimension
    if not chunks:
        return np.zeros((0, dimension), np.float32), []
    vectors: list[np.ndarray] = []
    words: list[TokenVectors] = []
    for start in _bar(range(0, len(chunks), EMBED_BATCH), show and len(chunks) > EMBED_BATCH, "embedding", unit_scale=EMBED_BATCH):
        batch = chunks[start: start + EMBED_BATCH]
        wholes, pieces = embedder.embed_with_tokens([whole_text(chunk) for chunk in batch])
        parts = [embedding_texts(chunk)[1:] for chunk in batch]
        part_vectors = iter(embedder.embed([text for texts in parts for text in texts]))
        for whole, texts in zip(wholes, parts):
            vectors.append(whole[None, :])
            vectors.extend(next(part_vectors)[None, :] for _ in texts)
        words.extend(pieces)
    return np.concatenate(vectors).astype(np.float32), words


def _bar(items, show: bool, label: str, unit_scale: int = 1):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="batch" if unit_scale > 1 else "file", leave=False)


def validate(folder: Path, embedder: Embedder, catalogue) -> None:
    """Raise PublishError unless the folder loads, matches the model, has every policy and answers a query per school."""
    from index.search import Retriever

    try:
        stored = store.load(folder, expected_model=embedder.name)
    except store.IndexNotReady as exc:
        raise PublishError(f"The new index does not load ({exc}); the current index is still serving.") from None
    if stored.manifest.dimension != embedder.dimension:
        raise PublishError(f"The new index has dimension {stored.manifest.dimension}, the model {embedder.dimension}.")
    present = {(d.school, d.policy) for d in stored.manifest.documents if d.chunks}
    missing = [f"{s}/{p.id}" for s, school in catalogue.schools.items() for p in school.policies if (s, p.id) not in present]
    if missing:
        raise PublishError(f"The new index has no clauses for {', '.join(missing)}; check those files. The current index is still serving.")
    retriever = Retriever(stored, embedder)
    for school_id, school in catalogue.schools.items():
        if not school.policies:
            continue
        if not retriever.search(school.policies[0].title, school_id, k=1):
            raise PublishError(f"Smoke query for {school_id} found nothing in the new index; the current index is still serving.")


# --- the change report ----------------------------------------------------------------------

def _report(documents, previous: _Previous, needs_metadata, dry_run: bool, readings=None) -> ChangeReport:
    readings = readings or {}
    added, changed, seen = [], [], set()
    unchanged = 0
    for source, chunks, digest, reused in documents:
        key = (source.school, source.policy)
        seen.add(key)
        if key not in previous.hashes:
            added.append(PolicyChange(source.school, source.policy, source.title, reading=readings.get(key)))
        elif reused or previous.hashes[key] == digest:
            unchanged += 1  # the same file (re-chunked by new code, or forced, is not a change to the policy)
        else:
            clauses = clause_changes(previous.chunks.get(key, []), chunks)
            if clauses:
                changed.append(PolicyChange(source.school, source.policy, source.title, clauses, readings.get(key)))
            else:
                unchanged += 1  # bytes changed, clauses did not (re-saved, reformatted)
    removed = [PolicyChange(s, p, previous.titles.get((s, p), p)) for (s, p) in sorted(previous.hashes) if (s, p) not in seen]
    return ChangeReport(tuple(added), tuple(changed), tuple(removed), unchanged, tuple(needs_metadata), dry_run=dry_run)


def clause_changes(old: list[Chunk], new: list[Chunk]) -> tuple[ClauseChange, ...]:
    """Clauses added, removed and reworded, comparing (section, text); a removed and an added
    clause with the same section number, or nearly the same words, are one rewording."""
    old_keys = [(c.section, c.text) for c in old]
    new_keys = [(c.section, c.text) for c in new]
    gone = [k for k in old_keys if k not in set(new_keys)]
    came = [k for k in new_keys if k not in set(old_keys)]
    out: list[ClauseChange] = []
    for section, text in gone:
        match = next((k for k in came if section and k[0] == section), None)
        if match is None:
            scored = [(difflib.SequenceMatcher(None, text, k[1]).ratio(), k) for k in came]
            best = max(scored, default=(0.0, None))
            match = best[1] if best[0] >= 0.6 else None
        if match is not None:
            came.remove(match)
            out.append(ClauseChange("reworded", match[0], old=text, new=match[1]))
        else:
            out.append(ClauseChange("removed", section, old=text))
    out.extend(ClauseChange("added", section, new=text) for section, text in came)
    return tuple(out)


def is_stale(index_dir: Path, policies_dir: Path, model: str) -> bool:
    """True when there is no index, or the model, the chunking code or any policy file differs from what it was built from."""
    folder = current_version(index_dir)
    if folder is None:
        return True
    try:
        manifest = store.read_manifest(folder)
    except store.IndexNotReady:
        return True
    if manifest.model != model or chunked_by_other_code(folder):
        return True
    found = all_sources(policies_dir, load_catalogue(policies_dir))
    built = {(d.school, d.policy): d.sha256 for d in manifest.documents}
    current = {}
    for source in found.sources:
        if not source.path.is_file():
            return True
        current[(source.school, source.policy)] = hashlib.sha256(source.path.read_bytes()).hexdigest()
    return built != current
