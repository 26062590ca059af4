"""The index the bot is answering from, swapped atomically when a new build is published.

A question takes one `Snapshot` at its start and finishes on it, so a reindex
never mixes two versions in one answer. `current()` also notices a version
published by another process (`policybot index` beside a running bot): it
checks the `CURRENT` pointer at most every `check_seconds` and loads the new
version in the background of that call; on failure it keeps serving the old one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from index import store
from index.embed import Embedder
from index.search import Retriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    manifest: store.Manifest
    retriever: Retriever


class LiveIndex:
    def __init__(self, folder: Path, embedder: Embedder, check_seconds: float | None = 5.0):
        self.folder = Path(folder)
        self.embedder = embedder
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
        log.info("serving index %s (%d chunks)", folder.name, len(stored.chunks))
        return Snapshot(folder, stored.manifest, Retriever(stored, self.embedder))
