"""Sentence vectors of reference texts, computed once per model and kept on disk.

The safeguarding gate learns from a few thousand example messages and the area
check compares questions with seventy areas of school life; embedding them at
every start would cost minutes. Their vectors are kept by model and text:

- a shipped file per model (bot/safeguarding/vectors/), made with the real model
  (`python -m bot.safeguarding.gate --ship`), so a first start embeds only what a
  DSL added;
- a file in the models folder for everything else, rewritten atomically.

A shipped file is used only when the model, embedding its probe texts now, gives
the vectors it records (cosine 0.999): a file made by other weights is ignored,
with a warning, and its texts are embedded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PROBES = ("a Year 9 told me her stepdad hits her", "can I accept a friend request from an ex-pupil?", "Who approved this policy?")
TOLERANCE = 0.999
BATCH = 256


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def slug(model_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in Path(model_name).name)[:60] + "-" + text_key(model_name)[:8]


class VectorCache:
    def __init__(self, embedder, folder: Path, shipped: Sequence[Path] = ()):
        self.embedder = embedder
        self.path = Path(folder) / f"{slug(embedder.name)}.npz"
        self._shipped = [Path(p) for p in shipped]
        self._lock = threading.Lock()
        self._known: dict[str, np.ndarray] | None = None

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The (n, dimension) unit vectors of the texts, embedding only those never seen with this model."""
        with self._lock:
            known = self._load()
            keys = [text_key(t) for t in texts]
            missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in known))
            if missing:
                log.info("embedding %d reference texts not yet cached for %s", len(missing), self.embedder.name)
                for start in range(0, len(missing), BATCH):
                    batch = missing[start: start + BATCH]
                    for text, vector in zip(batch, self.embedder.embed(batch)):
                        known[text_key(text)] = vector.astype(np.float32)
                self._save(known)
            if not texts:
                return np.zeros((0, self.embedder.dimension), np.float32)
            return np.stack([known[k] for k in keys]).astype(np.float32)

    def _load(self) -> dict[str, np.ndarray]:
        if self._known is not None:
            return self._known
        known: dict[str, np.ndarray] = {}
        for path in [*self._shipped, self.path]:
            if path.is_file():
                known.update(self._read(path))
        self._known = known
        return known

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["model"]) != self.embedder.name:
                    return {}
                keys, vectors = [str(k) for k in data["keys"]], data["vectors"].astype(np.float32)
                probes = data["probes"].astype(np.float32)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring the vector cache %s (%s)", path, type(exc).__name__)
            return {}
        agreement = float((self.embedder.embed(list(PROBES)) * probes).sum(axis=1).min())
        if agreement < TOLERANCE:
            log.warning("ignoring the vector cache %s: it was made by other weights of %s (cosine %.3f); embedding again",
                        path, self.embedder.name, agreement)
            return {}
        return dict(zip(keys, vectors))

    def _save(self, known: dict[str, np.ndarray]) -> None:
        write(self.path, self.embedder, known)


def write(path: Path, embedder, known: dict[str, np.ndarray]) -> None:
    """A cache file of `known` ({text key: vector}) for the embedder's model, written atomically (float16)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".vectors-", suffix=".npz", dir=path.parent)
        os.close(handle)
        try:
            keys = sorted(known)
            vectors = np.stack([known[k] for k in keys]) if keys else np.zeros((0, embedder.dimension), np.float32)
            np.savez(temporary, model=np.array(embedder.name), keys=np.array(keys), vectors=vectors.astype(np.float16),
                     probes=embedder.embed(list(PROBES)).astype(np.float32))
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    except OSError as exc:  # a read-only models folder: the vectors are computed again next time
        log.warning("could not write the vector cache %s (%s)", path, exc)
