"""Export a model's transformer for ONNX Runtime, with PyTorch's outputs to check every later load against.

Runs as a process of its own, the only place PolicyBot imports torch while ONNX
Runtime is on, so that a serving process never holds PyTorch's copy of the
weights (index/onnx_runtime.py starts it):

    python -m index.onnx_export MODEL_DIR FOLDER [--word-layer N] [--adapter FILE]

It traces the transformer (with the middle layer word matching reads,
index/tokens.py), checks the graph against PyTorch on a padded batch, and
writes into FOLDER, each file atomically and the model last:

    reference.npz        PyTorch's token ids, sentence vectors and token vectors for `PROBES`
    exported-from.json   what it was made from, for people and for tidying
    model.onnx           the graph

Failures print one line to stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index.onnx_runtime import FILE, NOTE, PROBES, RECIPE, REFERENCE, TEMPORARY, TOLERANCE, OnnxTransformer, cosines



def export(model_dir: Path, folder: Path, word_layer: int | None, adapter: Path | None = None) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu").eval()
    first = list(model)[0]
    if type(first).__name__ != "Transformer" or not hasattr(first, "auto_model"):
        raise ValueError(f"its first module is {type(first).__name__}, not a sentence-transformers Transformer")
    if adapter is not None:
        from index.adapters import merge

        merge(first.auto_model, adapter)  # the graph and its reference are of the adapted model

    class Transformer(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=word_layer is not None)
            return (out.last_hidden_state,) if word_layer is None else (out.last_hidden_state, out.hidden_states[word_layer])

    traced = model.tokenizer(["Can I accept a friend request from a former pupil?", "Who approved it?"], padding=True, return_tensors="pt")
    names = ["last"] + ([] if word_layer is None else ["words"])
    axes = {n: {0: "batch", 1: "tokens"} for n in ["input_ids", "attention_mask", *names]}
    folder.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(folder, ".onnx")
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow, for a graph checked below
            torch.onnx.export(Transformer(first.auto_model).eval(), (traced["input_ids"], traced["attention_mask"]), temporary,
                              input_names=["input_ids", "attention_mask"], output_names=names, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        reference = _reference(model, word_layer)
        _check(Path(temporary), reference, word_layer)
        _write_atomically(folder / REFERENCE, ".npz", lambda path: np.savez(path, **reference))
        note = {"model_dir": str(Path(model_dir).resolve()), "adapter": str(adapter) if adapter else None, "word_layer": word_layer, "recipe": RECIPE,
                "torch": torch.__version__, "exported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_atomically(folder / NOTE, ".json", lambda path: Path(path).write_text(json.dumps(note, indent=2), encoding="utf-8"))
        os.chmod(temporary, 0o644)  # another account running the bot reads the same folder
        os.replace(temporary, folder / FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _reference(model, word_layer: int | None) -> dict[str, np.ndarray]:
    """PyTorch's outputs for the probes: token ids, the pooled sentence vectors, and each token's vectors."""
    import torch

    features = model.tokenizer(list(PROBES), padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="pt")
    with torch.inference_mode():
        out = model[0].auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"], output_hidden_states=True)
        sentences = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    mask = features["attention_mask"].numpy().astype(bool)
    words = out.last_hidden_state if word_layer is None else out.hidden_states[word_layer]
    return {"ids": features["input_ids"].numpy()[mask].astype(np.int64), "lengths": mask.sum(axis=1).astype(np.int64),
            "sentences": np.asarray(sentences, np.float32), "last": out.last_hidden_state.numpy()[mask].astype(np.float32),
            "words": words.numpy()[mask].astype(np.float32)}


def _check(path: Path, reference: dict[str, np.ndarray], word_layer: int | None) -> None:
    """The graph gives PyTorch's token vectors for the probes, run as one padded batch."""
    lengths = reference["lengths"]
    ids = np.zeros((len(lengths), int(lengths.max())), np.int64)
    mask = np.zeros_like(ids)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for row, (start, end) in enumerate(zip(starts[:-1], starts[1:])):
        ids[row, : end - start], mask[row, : end - start] = reference["ids"][start:end], 1
    got = OnnxTransformer(path, word_layer)(ids, mask)  # padding ids differ by model; the mask makes them irrelevant
    keep = mask.astype(bool)
    for mine, theirs in ((got.last[keep], reference["last"]), (got.words[keep], reference["words"])):
        agreement = cosines(mine, theirs).min()
        if agreement < TOLERANCE:
            raise ValueError(f"the exported graph's token vectors differ from PyTorch's (cosine {agreement:.4f})")


def _temporary(folder: Path, suffix: str) -> str:
    handle, path = tempfile.mkstemp(prefix=TEMPORARY, suffix=suffix, dir=folder)
    os.close(handle)
    return path


def _write_atomically(target: Path, suffix: str, write) -> None:
    temporary = _temporary(target.parent, suffix)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m index.onnx_export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--word-layer", type=int, default=None)
    parser.add_argument("--adapter", type=Path, default=None, help="a LoRA adapter (index/adapters.py) merged in first")
    args = parser.parse_args(argv)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)
    try:
        export(args.model_dir, args.folder, args.word_layer, args.adapter)
    except Exception as exc:  # any model directory may be named; the caller falls back to PyTorch
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
