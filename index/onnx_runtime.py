"""The model's transformer under ONNX Runtime: the same vectors as PyTorch, in about half the time.

Answering a question runs the embedding model once on a short text, and on two
cores PyTorch spends much of that in per-operator overhead. The transformer is
exported once per model to an ONNX file under the models folder (with the
middle layer word matching reads, index/tokens.py) and run by ONNX Runtime;
tokenising and pooling stay with sentence-transformers, so any model directory
whose first module is a Transformer works the same. Measured on this 2-core
machine (bench/bench_onnx.py, 2026-12-03): a question's pass p50 10.4 -> 6.4 ms
with the bundled model, 47.1 -> 22.3 ms with all-mpnet-base-v2, every vector at
cosine 1.000000 to PyTorch's.

An export, fresh or found on disk, is used only after it gave PyTorch's token
vectors on a padded batch in this process: a stale, foreign or damaged file is
exported again once, and a model that still fails runs with PyTorch, with one
warning. `onnx` and `torch.onnx` are used only to export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FILE = "model.onnx"
NOTE = "exported-from.json"
TEMPORARY = "exporting-"
RECIPE = 1  # bump when the exported graph changes, so every cached export is redone
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")  # sharded weights too


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
    """The model's transformer under ONNX Runtime, exported into `cache_dir` on first use and checked against
    PyTorch on every load; None (PyTorch stays) when it cannot be exported, loaded or matched."""
    try:
        first = list(model)[0]
        if type(first).__name__ != "Transformer" or not hasattr(first, "auto_model"):
            raise ValueError(f"its first module is {type(first).__name__}, not a sentence-transformers Transformer")
        folder = Path(cache_dir) / _key(name, model_dir, word_layer)
        if (folder / FILE).is_file():
            try:
                return _checked(model, folder / FILE, word_layer)
            except Exception as exc:  # written by another model or torch, or damaged: export it again, once
                # (the file stays until the new one replaces it: the fault may have been this process's, not the file's)
                log.warning("the ONNX export %s is unusable (%s: %s); exporting again", folder.name, type(exc).__name__, exc)
        session = _export(model, word_layer, folder)
        try:  # housekeeping: a failure here costs disk space, not the export just made
            _write_note(folder, name, model_dir, word_layer)
            _tidy(folder, word_layer)
        except OSError as exc:
            log.warning("could not tidy the ONNX exports in %s (%s)", folder.parent, exc)
        return session
    except Exception as exc:  # any model directory may be named: a model the exporter cannot take still answers
        log.warning("model %s runs without ONNX Runtime (%s: %s); questions take longer", name, type(exc).__name__, exc)
        return None


def _key(name: str, model_dir: Path, word_layer: int | None) -> str:
    """A folder name: the model's name and folder, then a hash that changes when its weights, config, the word
    layer, the recipe or torch's exporter do. Exports of one model share the part before that hash."""
    import torch

    model_dir = Path(model_dir)
    weights = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for pattern in WEIGHT_FILES for f in model_dir.glob(pattern))
    config = model_dir / "config.json"
    identity = json.dumps([weights, config.read_text(encoding="utf-8") if config.is_file() else "", word_layer, RECIPE, torch.__version__])
    return f"{_model_prefix(name, model_dir)}{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _model_prefix(name: str, model_dir: Path) -> str:
    slug = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(name).name)[:40]
    return f"{slug}-{hashlib.sha256(json.dumps([name, str(Path(model_dir).resolve())]).encode()).hexdigest()[:8]}-"


def _export(model, word_layer: int | None, folder: Path) -> OnnxTransformer:
    """Trace the transformer on a short text, check it, and move it into place atomically (a rival process may
    export too)."""
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
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY, suffix=".onnx", dir=folder)
    os.close(handle)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow, for a graph checked below
            torch.onnx.export(Transformer(model[0].auto_model).eval(), (features["input_ids"], features["attention_mask"]), temporary,
                              input_names=["input_ids", "attention_mask"], output_names=names, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        session = _checked(model, Path(temporary), word_layer)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; another account running the bot reads the same folder
        os.replace(temporary, folder / FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)
    log.info("exported %s for ONNX Runtime", folder.name)
    return session


def _write_note(folder: Path, name: str, model_dir: Path, word_layer: int | None) -> None:
    """What the export was made from, for whoever looks in the folder, and for `_tidy`."""
    import torch

    note = {"model": name, "directory": str(Path(model_dir).resolve()), "word_layer": word_layer, "recipe": RECIPE,
            "torch": torch.__version__, "exported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY, suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(note, out, indent=2)
    os.chmod(temporary, 0o644)
    os.replace(temporary, folder / NOTE)


def _tidy(folder: Path, word_layer: int | None) -> None:
    """Remove this model's exports for the same word layer but older weights, recipe or torch, once they are a
    day old (another process may still be starting from a younger one), and temporary files an interrupted export
    left over an hour ago (a younger one may be a rival process's export in progress)."""
    prefix = folder.name[: -16]
    slug = prefix[: -10]
    for other in folder.parent.iterdir():
        # the first release named a folder `slug-<16 hex>`, without the model's own hash, and wrote no note
        earlier = re.fullmatch(re.escape(slug) + "-[0-9a-f]{16}", other.name)
        if other == folder or not other.is_dir() or not (other.name.startswith(prefix) or earlier):
            continue
        with contextlib.suppress(OSError, ValueError):
            if time.time() - (other / FILE).stat().st_mtime < 86400:
                continue
            if (other / NOTE).is_file() and json.loads((other / NOTE).read_text(encoding="utf-8")).get("word_layer") != word_layer:
                continue
            shutil.rmtree(other, ignore_errors=True)
    for stray in [*folder.glob(TEMPORARY + "*.onnx"), *folder.glob(TEMPORARY + "*.json")]:
        with contextlib.suppress(OSError):
            if time.time() - stray.stat().st_mtime > 3600:
                stray.unlink()


def _checked(model, path: Path, word_layer: int | None) -> OnnxTransformer:
    """A session over `path`, if it gives PyTorch's token vectors on a padded batch of other lengths than the
    export was traced on; a file from another model, layer or torch fails here, as does a damaged one."""
    import torch

    texts = ["Is WhatsApp social media?", "What should I do if a parent posts something abusive about me on a school Facebook page?", "Hi"]
    features = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model[0].auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"], output_hidden_states=True)
    session = OnnxTransformer(path, word_layer)
    got = session(features["input_ids"].numpy(), features["attention_mask"].numpy())
    mask = features["attention_mask"].numpy().astype(bool)
    pairs = [(got.last, expected.last_hidden_state)] + ([] if word_layer is None else [(got.words, expected.hidden_states[word_layer])])
    for mine, theirs in pairs:
        if mine.shape != tuple(theirs.shape):
            raise ValueError(f"the exported graph gives token vectors of shape {mine.shape}, PyTorch {tuple(theirs.shape)}")
        agreement = _cosines(mine[mask], theirs.float().numpy()[mask]).min()
        if agreement < 0.999:
            raise ValueError(f"the exported graph's token vectors differ from PyTorch's (cosine {agreement:.4f})")
    return session


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
