"""A sentence-transformers model folder read without torch: its tokenizer, pooling and limits.

The serving process runs the model's transformer under ONNX Runtime
(index/onnx_runtime.py) and does the rest itself: tokenising with the folder's
`tokenizer.json` (the Rust `tokenizers` library sentence-transformers uses too)
and pooling with numpy. Only folders laid out as Transformer -> Pooling (mean or
CLS) -> optional Normalize are read this way; anything else runs on PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from index.errors import PolicyBotError

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
NORMALIZE = "sentence_transformers.models.Normalize"


class UnsupportedModel(PolicyBotError):
    """The folder is a model this reader cannot run without torch; it runs on PyTorch instead."""


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    max_seq_length: int
    pooling: str  # "mean" or "cls"
    normalize: bool
    dimension: int

    @cached_property
    def tokenizer(self):
        """The folder's fast tokenizer, truncating to the model's limit and padding a batch to its longest text."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        tokenizer.enable_truncation(self.max_seq_length)
        pad = self._special("pad_token")
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)
        return tokenizer

    @cached_property
    def special_ids(self) -> frozenset[int]:
        """Ids of the tokens the tokenizer adds (<s>, [CLS], padding...): never content words."""
        raw = json.loads((self.path / "tokenizer.json").read_text(encoding="utf-8"))
        return frozenset(int(t["id"]) for t in raw.get("added_tokens", []) if t.get("special"))

    def _special(self, name: str) -> str:
        for file in ("special_tokens_map.json", "tokenizer_config.json"):
            path = self.path / file
            if path.is_file():
                value = json.loads(path.read_text(encoding="utf-8")).get(name)
                if isinstance(value, dict):
                    value = value.get("content")
                if value:
                    return str(value)
        raise UnsupportedModel(f"{self.path}: no {name} in special_tokens_map.json or tokenizer_config.json")


def read_model_folder(path: Path) -> ModelFolder:
    """The folder's layout, or UnsupportedModel saying what this reader cannot run."""
    path = Path(path)
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        types = [module["type"] for module in sorted(modules, key=lambda m: int(m.get("idx", 0)))]
        if types[:2] != [TRANSFORMER, POOLING] or types[2:] not in ([], [NORMALIZE]):
            raise UnsupportedModel(f"{path}: modules {', '.join(t.rsplit('.', 1)[-1] for t in types)}, not Transformer, Pooling[, Normalize]")
        pooling_dir = next(m["path"] for m in modules if m["type"] == POOLING)
        pooling = json.loads((path / pooling_dir / "config.json").read_text(encoding="utf-8"))
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if not (path / "tokenizer.json").is_file():
            raise UnsupportedModel(f"{path}: no tokenizer.json")
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise UnsupportedModel(f"{path}: not a readable sentence-transformers folder ({type(exc).__name__}: {exc})") from None
    modes = [mode for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")
             if pooling.get(f"pooling_mode_{mode}")]
    if modes not in (["mean_tokens"], ["cls_token"]):
        raise UnsupportedModel(f"{path}: pooling {modes or 'none'}, not mean or CLS")
    if config.get("do_lower_case"):
        raise UnsupportedModel(f"{path}: lower-casing before the tokenizer is not supported")
    return ModelFolder(path=path, max_seq_length=int(config.get("max_seq_length") or 512),
                       pooling="mean" if modes == ["mean_tokens"] else "cls", normalize=types[2:] == [NORMALIZE],
                       dimension=int(pooling["word_embedding_dimension"]))
