"""The index the bot is answering from, swapped atomically when a new build is published.

A question takes one `Snapshot` at its start and finishes on it, so a reindex
never mixes two versions in one answer. `current()` also notices a version
published by another process (`policybot index` beside a running bot, or
another replica): it checks the `CURRENT` pointer at most every `check_seconds`
(half a second) and loads the new version in that call; on failure it keeps
serving the old one. Each version carries the catalogue it was built from, so a
broken or edited catalogue.yaml never changes what answers say.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from index import store
from index.catalogue import Catalogue, load_catalogue
from index.embed import Embedder
from index.errors import PolicyBotError
from index.search import Retriever

CATALOGUE_FILE = "catalogue.json"  # in each published version: the catalogue it was built from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    manifest: store.Manifest
    retriever: Retriever
    catalogue: Catalogue  # the catalogue this version was built from: what answers and status name
    catalogue_note: str = ""  # why the catalogue on disk is not the one served, when it is not


class LiveIndex:
    def __init__(self, folder: Path, embedder: Embedder, check_seconds: float | None = 0.5, policies_dir: Path | None = None,
                 reference_vectors=None):
        self.folder = Path(folder)
        self.embedder = embedder
        self.policies_dir = Path(policies_dir) if policies_dir else None  # read only for an index published without a catalogue
        self.reference_vectors = reference_vectors  # a cache for the areas' vectors (index/vector_cache.py)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = time.monotonic()

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                if self._snapshot is None:
                    self._snapshot = self._load(store.resolve_current(self.folder))
                snapshot = self._snapshot
        elif self.check_seconds is not None and time.monotonic() - self._checked >= self.check_seconds:
            self._checked = time.monotonic()
            if self._lock.acquire(blocking=False):  # one thread looks; the others keep answering
                try:
                    self._reload_locked()
                finally:
                    self._lock.release()
                snapshot = self._snapshot
        return snapshot

    def reload(self) -> bool:
        """Load the published index if it changed; True when a new one is now serving."""
        with self._lock:
            return self._reload_locked()

    def _reload_locked(self) -> bool:
        try:
            folder = store.resolve_current(self.folder)
            if self._snapshot is not None and self._snapshot.folder == folder and self._snapshot.manifest == store.read_manifest(folder):
                return False
            self._snapshot = self._load(folder)
            return True
        except store.IndexNotReady as exc:
            if self._snapshot is None:
                raise
            log.warning("keeping index %s: the published one does not load (%s)", self._snapshot.folder.name, exc)
            return False

    def _load(self, folder: Path) -> Snapshot:
        stored = store.load(folder, expected_model=self.embedder.name)
        catalogue = published_catalogue(folder, self.policies_dir)
        log.info("serving index %s (%d chunks)", folder.name, len(stored.chunks))
        return Snapshot(folder, stored.manifest, Retriever(stored, self.embedder, reference_vectors=self.reference_vectors),
                        catalogue, catalogue_drift(catalogue, self.policies_dir))


def published_catalogue(folder: Path, policies_dir: Path | None) -> Catalogue:
    """The catalogue a version was published with; an index from before catalogues were published reads the file."""
    path = Path(folder) / CATALOGUE_FILE
    if path.is_file():
        try:
            return Catalogue.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise store.IndexNotReady(f"The published catalogue {path} is corrupt ({type(exc).__name__}); run `policybot index`.") from None
    if policies_dir is None:
        raise store.IndexNotReady(f"The index at {folder} has no published catalogue; run `policybot index` to publish one.")
    try:
        return load_catalogue(policies_dir)
    except PolicyBotError as exc:
        raise store.IndexNotReady(f"{exc} The index at {folder} has no published catalogue to fall back on; fix it and run `policybot index`.") from None


def catalogue_drift(served: Catalogue, policies_dir: Path | None) -> str:
    """A line for status when catalogue.yaml on disk is not what is served (broken, edited, or rolled back past)."""
    if policies_dir is None:
        return ""
    try:
        on_disk = load_catalogue(policies_dir)
    except PolicyBotError as exc:
        return f"catalogue.yaml is broken, so answers use the published catalogue: {exc}"
    if on_disk != served:
        return "catalogue.yaml differs from the published catalogue answers use; run `policybot index` to publish it"
    return ""
