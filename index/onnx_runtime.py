"""The model's transformer under ONNX Runtime: the same vectors as PyTorch, in a third of the time.

Answering a question runs the embedding model once on a short text, and on two
cores PyTorch spends most of that in per-operator overhead. The transformer is
exported once per model to an ONNX file under the models folder (with the
middle layer word matching reads, index/tokens.py) and run by ONNX Runtime;
tokenising and pooling stay with sentence-transformers, so any model directory
works the same. Measured on this 2-core machine (bench/bench_onnx.py): the
question pass of all-mpnet-base-v2 p50 72 ms with PyTorch against 27 ms, with
every vector at cosine 0.9999 or more to PyTorch's.

A model that cannot be exported or loaded is run by PyTorch, with one warning.
`onnx` and `torch` are imported only to export; `onnxruntime` only to load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FILE = "model.onnx"
RECIPE = 1  # bump when the exported graph changes, so every cached export is redone
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Outputs:
    """One batch's token vectors from the last layer and from the word layer (the same array when that is the last)."""

    last: np.ndarray  # float32 (batch, tokens, dimension)
    words: np.ndarray


class OnnxTransformer:
    """An ONNX Runtime session over a model's transformer: token ids and mask in, token vectors out."""

    def __init__(self, path: Path, word_layer: int | None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # idle worker threads spinning for work would slow FAISS and numpy, which run between two questions
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.word_layer = word_layer

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        outputs = self._session.run(None, {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)})
        return Outputs(last=outputs[0], words=outputs[-1])


def load(model, name: str, model_dir: Path, word_layer: int | None, cache_dir: Path) -> OnnxTransformer | None:
    """The model's transformer under ONNX Runtime, exported into `cache_dir` on first use; None (PyTorch stays) when
    it cannot be exported or loaded."""
    folder = Path(cache_dir) / _key(name, model_dir, word_layer)
    try:
        if not (folder / FILE).is_file():
            _export(model, word_layer, folder)
        return OnnxTransformer(folder / FILE, word_layer)
    except Exception as exc:  # any model directory may be named: a model the exporter cannot take still answers
        log.warning("model %s runs without ONNX Runtime (%s: %s); questions take longer", name, type(exc).__name__, exc)
        return None


def _key(name: str, model_dir: Path, word_layer: int | None) -> str:
    """A folder name that changes when the model's weights, the word layer, the recipe or torch's exporter do."""
    import torch

    weights = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in (Path(model_dir) / w for w in WEIGHT_FILES) if f.is_file()]
    config = Path(model_dir) / "config.json"
    identity = json.dumps([name, str(Path(model_dir).resolve()), weights, config.read_text(encoding="utf-8") if config.is_file() else "",
                           word_layer, RECIPE, torch.__version__])
    slug = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(name).name)[:40]
    return f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _export(model, word_layer: int | None, folder: Path) -> None:
    """Trace the transformer on a short text and write the ONNX file atomically (a rival process may export too)."""
    import torch

    class Transformer(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=word_layer is not None)
            return (out.last_hidden_state,) if word_layer is None else (out.last_hidden_state, out.hidden_states[word_layer])

    features = model.tokenizer(["Can I accept a friend request from a former pupil?", "Who approved it?"], padding=True, return_tensors="pt")
    names = ["last"] + ([] if word_layer is None else ["words"])
    axes = {n: {0: "batch", 1: "tokens"} for n in ["input_ids", "attention_mask", *names]}
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow, for a graph checked below
            torch.onnx.export(Transformer(model[0].auto_model).eval(), (features["input_ids"], features["attention_mask"]), temporary,
                              input_names=["input_ids", "attention_mask"], output_names=names, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        _check(model, Path(temporary), word_layer)
        os.replace(temporary, folder / FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)
    log.info("exported %s for ONNX Runtime", folder.name)


def _check(model, path: Path, word_layer: int | None) -> None:
    """The exported graph must give PyTorch's vectors on a padded batch of other lengths than it was traced on."""
    import torch

    texts = ["Is WhatsApp social media?", "What should I do if a parent posts something abusive about me on a school Facebook page?", "Hi"]
    features = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model[0].auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"], output_hidden_states=True)
    got = OnnxTransformer(path, word_layer)(features["input_ids"].numpy(), features["attention_mask"].numpy())
    mask = features["attention_mask"].numpy().astype(bool)
    pairs = [(got.last, expected.last_hidden_state)] + ([] if word_layer is None else [(got.words, expected.hidden_states[word_layer])])
    for mine, theirs in pairs:
        agreement = _cosines(mine[mask], theirs.float().numpy()[mask]).min()
        if agreement < 0.999:
            raise ValueError(f"the exported graph's token vectors differ from PyTorch's (cosine {agreement:.4f})")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
