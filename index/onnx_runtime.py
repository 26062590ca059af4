"""The model's transformer under ONNX Runtime: PyTorch's vectors, in about half the time, without PyTorch.

Answering a question runs the embedding model once on a short text, and on two
cores PyTorch spends much of that in per-operator overhead. The transformer is
exported once per model into the models folder by a process of its own
(index/onnx_export.py, the only place torch is imported), with the middle layer
word matching reads (index/tokens.py) and PyTorch's outputs for a few probe
texts. A serving process then holds one copy of the weights: tokenising comes
from the folder's tokenizer.json and pooling is numpy (index/model_folder.py).

Every load, fresh or from disk, is checked without torch: the probes must give
PyTorch's token ids and, to cosine 0.999, its sentence and token vectors, run as
one padded batch through this process's tokenizer, graph and pooling. A stale,
foreign or damaged export is exported again once; a model that still fails runs
with PyTorch, with one warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from index.model_folder import ModelFolder

log = logging.getLogger(__name__)
os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read when ONNX Runtime starts: see `_no_telemetry`

FILE = "model.onnx"
REFERENCE = "reference.npz"
NOTE = "exported-from.json"
TEMPORARY = "exporting-"
RECIPE = 2  # bump when the exported graph or the reference changes, so every cached export is redone
# texts of very different lengths: the check runs them as one padded batch, as the index embeds passages
PROBES = (
    "Is WhatsApp social media?",
    "What should I do if a parent posts something abusive about me on a school Facebook page after a match?",
    "Hi",
    "can i follow old y11s on insta now theyve left",
)
TOLERANCE = 0.999  # lowest cosine between this runtime's vectors and PyTorch's
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")  # sharded weights too
EXPORT_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Outputs:
    """One batch's token vectors from the last layer and from the word layer (the same array when that is the last)."""

    last: np.ndarray  # float32 (batch, tokens, dimension)
    words: np.ndarray


class OnnxTransformer:
    """An ONNX Runtime session over a model's transformer: token ids and mask in, token vectors out."""

    def __init__(self, path: Path, word_layer: int | None):
        import onnxruntime

        _no_telemetry(onnxruntime)
        shared = _shared_threads(onnxruntime)
        try:
            self._session = onnxruntime.InferenceSession(str(path), _options(onnxruntime, shared), providers=["CPUExecutionProvider"])
        except Exception:  # the process made ONNX Runtime's environment before the shared pool: threads of its own
            if not shared:
                raise
            self._session = onnxruntime.InferenceSession(str(path), _options(onnxruntime, False), providers=["CPUExecutionProvider"])
        self.word_layer = word_layer

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> Outputs:
        outputs = self._session.run(None, {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)})
        return Outputs(last=outputs[0], words=outputs[-1])


@functools.cache  # decided once per process
def _shared_threads(onnxruntime) -> bool:
    """One pool of worker threads for every session of the process (the answer model and the safeguarding gate's),
    allowed to spin between the operators of a pass. Each session with a pool of its own, spinning, would fight
    the other's idle threads and numpy's for two cores (the warm answer took 59 ms at p50 that way, 36 ms
    without spinning); one shared pool that spins: 34 ms, and p95 45 ms against 56 (docs/quality.md)."""
    try:
        onnxruntime.set_global_thread_pool_sizes(len(os.sched_getaffinity(0)), 1)  # a thread per core it may use
        return True
    except Exception:  # the environment already exists (created by other code in this process)
        return False


def _options(onnxruntime, shared: bool):
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if shared:
        options.use_per_session_threads = False
    else:  # idle threads of a pool of its own spinning for work would slow the other session, FAISS and numpy
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _no_telemetry(onnxruntime) -> None:
    """ONNX Runtime 1.2x records telemetry events (OS, CPU, paths) in ~/.cache/Microsoft/DeveloperTools on Linux
    unless ORT_DISABLE_TELEMETRY is set before it starts (set at the top of this module); a school's server should
    not phone home. Turning the events off as well covers a process that loaded onnxruntime before this module."""
    disable = getattr(onnxruntime, "disable_telemetry_events", None)
    if disable is not None:
        disable()


def pool(last: np.ndarray, mask: np.ndarray, folder: ModelFolder) -> np.ndarray:
    """The model's sentence vectors from its last layer: mean over the real tokens (or the first token), then
    unit length when the model normalises, as sentence-transformers' Pooling and Normalize modules do."""
    if folder.pooling == "cls":
        pooled = last[:, 0, :]
    else:
        weights = mask[:, :, None].astype(np.float32)
        pooled = (last * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if folder.normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)


def encode(folder: ModelFolder, texts) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask of a padded batch, as the model's own tokenizer gives them."""
    encodings = folder.tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def load(name: str, folder: ModelFolder, word_layer: int | None, cache_dir: Path, adapter: Path | None = None) -> OnnxTransformer | None:
    """The model's transformer (with `adapter` merged in) under ONNX Runtime, exported into `cache_dir` on first use
    and checked on every load; None (PyTorch stays) when it cannot be exported, loaded or matched."""
    try:
        target = Path(cache_dir) / _key(name, folder.path, word_layer)
        if (target / FILE).is_file():
            try:
                return _verified(target, folder, word_layer)
            except Exception as exc:  # written by another model or torch, or damaged: export it again, once
                # (the file stays until the new one replaces it: the fault may have been this process's, not the file's)
                log.warning("the ONNX export %s is unusable (%s: %s); exporting again", target.name, type(exc).__name__, exc)
        _export(folder.path, target, word_layer, adapter)
        session = _verified(target, folder, word_layer)
        try:  # housekeeping: a failure here costs disk space, not the export just made
            _tidy(target, word_layer)
        except OSError as exc:
            log.warning("could not tidy the ONNX exports in %s (%s)", target.parent, exc)
        return session
    except Exception as exc:  # any model directory may be named: a model the exporter cannot take still answers
        log.warning("model %s runs without ONNX Runtime (%s: %s); questions take longer", name, type(exc).__name__, exc)
        return None


def _export(model_dir: Path, target: Path, word_layer: int | None, adapter: Path | None = None) -> None:
    """Export in a process of its own, so this one never imports torch."""
    target.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "index.onnx_export", str(model_dir), str(target)]
    if word_layer is not None:
        command += ["--word-layer", str(word_layer)]
    if adapter is not None:
        command += ["--adapter", str(Path(adapter).resolve())]
    log.info("exporting %s for ONNX Runtime (once per model)", target.name)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_SECONDS,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"the export failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    log.info("exported %s for ONNX Runtime in %.1fs", target.name, time.perf_counter() - started)


def _verified(target: Path, folder: ModelFolder, word_layer: int | None) -> OnnxTransformer:
    """A session over the export, if this process's tokenizer, graph and pooling give PyTorch's outputs for the
    probes; a file from another model, layer or torch fails here, as does a damaged one."""
    with np.load(target / REFERENCE) as data:
        reference = {key: data[key] for key in data.files}
    session = OnnxTransformer(target / FILE, word_layer)
    ids, mask = encode(folder, PROBES)
    keep = mask.astype(bool)
    if not np.array_equal(ids[keep], reference["ids"]):
        raise ValueError("the tokenizer gives other token ids than PyTorch's for the probe texts")
    got = session(ids, mask)
    checks = (("sentence", pool(got.last, mask, folder), reference["sentences"]), ("token", got.last[keep], reference["last"]),
              ("word-layer", got.words[keep], reference["words"]))
    for what, mine, theirs in checks:
        if mine.shape != theirs.shape:
            raise ValueError(f"the exported graph gives {what} vectors of shape {mine.shape}, PyTorch {theirs.shape}")
        agreement = cosines(mine, theirs).min()
        if agreement < TOLERANCE:
            raise ValueError(f"the exported graph's {what} vectors differ from PyTorch's (cosine {agreement:.4f})")
    return session


def _key(name: str, model_dir: Path, word_layer: int | None) -> str:
    """A folder name: the model's name and folder, then a hash that changes when its weights, config, the word
    layer, the recipe or torch's exporter do. Exports of one model share the part before that hash."""
    model_dir = Path(model_dir)
    weights = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for pattern in WEIGHT_FILES for f in model_dir.glob(pattern))
    config = model_dir / "config.json"
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    identity = json.dumps([weights, config.read_text(encoding="utf-8") if config.is_file() else "", word_layer, RECIPE, torch_version])
    return f"{_model_prefix(name, model_dir)}{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _model_prefix(name: str, model_dir: Path) -> str:
    slug = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(name).name)[:40]
    return f"{slug}-{hashlib.sha256(json.dumps([name, str(Path(model_dir).resolve())]).encode()).hexdigest()[:8]}-"


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
    for stray in [*folder.glob(TEMPORARY + "*")]:
        with contextlib.suppress(OSError):
            if time.time() - stray.stat().st_mtime > 3600:
                stray.unlink()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
