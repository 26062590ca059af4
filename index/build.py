"""From a policies folder to chunks: find the sources, load, clean, chunk; what the embedder sees.

`index.publish` embeds and stores them as a new index version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from index.catalogue import Catalogue
from index.chunk import chunk_document, passages
from index.clean import clean
from index.load import load_document
from index.model import Chunk


# The code that turns a policy file into chunks and the texts embedded for them, and the parsers it uses. An index
# built by other code is re-chunked and re-embedded in full, so an upgrade never serves clauses cut the old way.
PIPELINE_MODULES = ("load.py", "formats.py", "clean.py", "document_control.py", "chunk.py", "model.py", "build.py", "embed.py", "tokens.py", "lexical.py")
PIPELINE_PACKAGES = ("pypdf", "python-docx", "beautifulsoup4", "readability-lxml", "lxml")


def _fingerprint() -> str:
    from importlib import metadata

    digest = hashlib.sha256()
    for name in PIPELINE_MODULES:
        try:
            digest.update((Path(__file__).parent / name).read_bytes())
        except OSError:  # installed without sources: the release stands for the code
            digest.update(f"policybot {metadata.version('policybot')}".encode())
    for package in PIPELINE_PACKAGES:
        try:
            digest.update(f"{package} {metadata.version(package)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()[:16]


# taken at import, so a long-running process stamps its indexes with the code it is running, not newer files on disk
PIPELINE = _fingerprint()


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


@dataclass(frozen=True)
class Reading:
    """What one policy file became: its chunks, the SHA-256 of its bytes, and what was dropped as noise."""

    chunks: list[Chunk]
    digest: str
    dropped: tuple[tuple[str, str], ...] = ()  # (reason, text): web page clutter, page headers, contents lists

    @property
    def headings(self) -> list[str]:
        """The document's headings in order, each once."""
        seen: dict[str, None] = {}
        for chunk in self.chunks:
            if chunk.heading:
                seen.setdefault(chunk.heading_path, None)
        return list(seen)


def read_source(source: Source) -> Reading:
    document = load_document(source.path, source.school, source.policy)
    digest = hashlib.sha256(source.path.read_bytes()).hexdigest()
    dropped = list(document.dropped)
    chunks = chunk_document(document, clean(document.text, dropped))
    return Reading(chunks, digest, tuple(dropped))


def chunk_source(source: Source) -> tuple[list[Chunk], str]:
    """Chunks of one policy file and the SHA-256 of its bytes."""
    reading = read_source(source)
    return reading.chunks, reading.digest


def embedding_texts(chunk: Chunk) -> list[str]:
    """What the embedder sees for a chunk: the whole chunk, then each sentence or list item."""
    parts = passages(chunk)
    texts = [whole_text(chunk)]
    if len(parts) > 1:
        texts.extend(_prefix(chunk) + part for part in parts)
    return texts


def whole_text(chunk: Chunk) -> str:
    """The whole chunk with its heading and lead-in: its first embedded passage, and the text its words are taken from."""
    return _prefix(chunk) + chunk.text.replace("\n- ", " ")


def _prefix(chunk: Chunk) -> str:
    prefix = f"{chunk.heading_path}: " if chunk.heading else ""
    return prefix + chunk.context + " " if chunk.context else prefix


@dataclass(frozen=True)
class Found:
    """Every policy file to index: the catalogue's, then files in a school's folder without an entry."""

    sources: list[Source]
    needs_metadata: tuple[str, ...] = ()
    needs_metadata_details: tuple[dict, ...] = ()
    not_indexed: tuple[tuple[str, str], ...] = ()  # (file, why) for every other file under the policies folder


def all_sources(policies_dir: Path, catalogue: Catalogue) -> Found:
    """`sources` plus the uncatalogued files in policies/<school>/, titled from their header where possible."""
    import re

    from index.formats import header_metadata
    from index.load import supported_suffixes

    listed = sources(policies_dir, catalogue)
    known = {source.path.resolve() for source in listed}
    extra: list[Source] = []
    details: list[dict] = []
    skipped: list[tuple[str, str]] = []
    suffixes = set(supported_suffixes())
    root = Path(policies_dir)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []:
        if folder.name not in catalogue.schools:
            for path in sorted(q for q in folder.rglob("*") if q.is_file() and q.resolve() not in known):
                skipped.append((str(path.relative_to(root)), f"no school {folder.name!r} in catalogue.yaml"))
            continue
        school = catalogue.schools[folder.name]
        ids = {policy.id for policy in school.policies}
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.resolve() in known:
                continue
            name = str(path.relative_to(root))
            if path.parent != folder:
                skipped.append((name, "in a sub-folder; put it in the school's folder itself or list it in catalogue.yaml"))
            elif path.name.startswith("~$"):
                skipped.append((name, "a Word lock file (the document is open in Word)"))
            elif path.name.startswith("."):
                skipped.append((name, "a hidden file"))
            elif path.suffix.lower() not in suffixes:
                skipped.append((name, f"not a format PolicyBot reads; save it as one of {', '.join(sorted(suffixes))}"))
            else:
                policy_id = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-") or "policy"
                while policy_id in ids:
                    policy_id += "-file"
                ids.add(policy_id)
                meta = header_metadata(load_document(path, folder.name, policy_id).text)
                title = meta.get("title", path.stem)
                extra.append(Source(folder.name, policy_id, path, title))
                details.append({"school": folder.name, "policy": policy_id, "file": name, **meta, "title": title})
    for path in sorted(p for p in root.iterdir() if p.is_file()) if root.is_dir() else []:
        if path.name != "catalogue.yaml" and not path.name.startswith("."):
            skipped.append((path.name, "outside any school's folder; move it into policies/<school-id>/"))
    return Found(listed + extra, tuple(d["file"] for d in details), tuple(details), tuple(skipped))
