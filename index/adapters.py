"""Low-rank adapters (LoRA) shipped as small files and merged into a model's weights before it is exported or run.

A file holds, for each adapted linear layer of the transformer, the two factors
`<module>.A` (rank x in) and `<module>.B` (out x rank) and the scale: the layer's
weight becomes W + scale * B @ A. Merging happens once, where torch runs
(index/onnx_export.py, or the PyTorch backend), so the exported graph and the
served model are the plain merged model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from index.errors import PolicyBotError


class AdapterError(PolicyBotError):
    pass


def adapter_id(path: Path) -> str:
    """A short, stable id of the adapter file's contents, for model names and export folders."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def read(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    try:
        with np.load(path, allow_pickle=False) as data:
            scale = float(data["scale"])
            factors = {name[: -len(".A")]: (data[name], data[name[: -len(".A")] + ".B"]) for name in data.files if name.endswith(".A")}
    except (OSError, ValueError, KeyError) as exc:
        raise AdapterError(f"The adapter {path} cannot be read ({type(exc).__name__}); restore it from the release") from None
    if not factors:
        raise AdapterError(f"The adapter {path} holds no layers")
    return factors, scale


def merge(auto_model, path: Path) -> int:
    """Add the adapter's low-rank updates into the transformer's linear layers, in place; returns how many."""
    import torch

    factors, scale = read(path)
    modules = dict(auto_model.named_modules())
    with torch.no_grad():
        for name, (a, b) in factors.items():
            layer = modules.get(name)
            if layer is None or not hasattr(layer, "weight") or tuple(layer.weight.shape) != (b.shape[0], a.shape[1]):
                raise AdapterError(f"The adapter {path} does not fit this model (layer {name})")
            layer.weight += scale * torch.from_numpy(b.astype(np.float32) @ a.astype(np.float32))
    return len(factors)


def save(path: Path, factors: dict[str, tuple[np.ndarray, np.ndarray]], scale: float) -> None:
    arrays = {"scale": np.array(scale, np.float32)}
    for name, (a, b) in factors.items():
        arrays[f"{name}.A"], arrays[f"{name}.B"] = a.astype(np.float16), b.astype(np.float16)
    np.savez(path, **arrays)
