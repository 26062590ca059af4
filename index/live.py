"""The index the bot is answering from, swapped atomically when a new build is published.

A question takes one `Snapshot` at its start and finishes on it, so a reindex
never mixes two versions in one answer.
"""

from __future__ import annotations

import logging
import threading
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
    def __init__(self, folder: Path, embedder: Embedder):
        self.folder = Path(folder)
        self.embedder = embedder
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                if self._snapshot is None:
                    self._snapshot = self._load()
                snapshot = self._snapshot
        return snapshot

    def reload(self) -> bool:
        """Load the published index if it changed; True when a new one is now serving."""
        with self._lock:
            folder = store.resolve_current(self.folder)
            if self._snapshot is not None and self._snapshot.folder == folder and self._snapshot.manifest == store.read_manifest(folder):
                return False
            self._snapshot = self._load()
            return True

    def _load(self) -> Snapshot:
        folder = store.resolve_current(self.folder)
        stored = store.load(folder, expected_model=self.embedder.name)
        log.info("serving index %s (%d chunks)", folder.name, len(stored.chunks))
        return Snapshot(folder, stored.manifest, Retriever(stored, self.embedder))
