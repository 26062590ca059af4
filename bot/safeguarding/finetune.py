"""Contrastive fine-tuning of the gate's model (SetFit-style), kept as a small low-rank adapter. Maintainers only.

The gate's model learns to place messages that should go to the same person
(the DSL, the headteacher, the chair of governors, nobody) near each other:
pairs of examples are drawn at random, and the cosine of a pair is pulled to 1
when both have the same label and to 0 when not (SetFit's CosineSimilarityLoss).
Only low-rank updates of the transformer's linear layers are trained (LoRA), so
the result ships as a file of about a megabyte (bot/safeguarding/adapter/); the
regressions of bot/safeguarding/gate.py are then fitted on the adapted vectors,
at start-up, with any examples a DSL has added.

    python -m bot.safeguarding.maintain finetune    # writes the adapter, then `ship` writes its example vectors
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np

from bot.safeguarding.examples import Example
from index import adapters

log = logging.getLogger(__name__)

TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")


def label(example: Example) -> str:
    return (example.recipient or "staff") if example.concern else "none"


def finetune(model_dir: Path, examples: list[Example], out: Path, *, pairs: int = 8000, batch: int = 32, rank: int = 16,
             lr: float = 2e-4, seed: int = 0, max_length: int = 128) -> Path:
    """Train a LoRA adapter on the examples and write it to `out`; returns `out`."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(str(model_dir), device="cpu")
    encoder = model[0].auto_model
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    wrapped = _wrap(encoder, rank)
    params = [p for w in wrapped.values() for p in (w.a, w.b)]
    optimiser = torch.optim.AdamW(params, lr=lr)
    by_label: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        by_label.setdefault(label(example), []).append(i)
    labels = list(by_label)
    texts = [e.text for e in examples]

    def encode(chosen: list[int]):
        features = model.tokenizer([texts[i] for i in chosen], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out_ = encoder(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
        mask = features["attention_mask"][..., None]
        return torch.nn.functional.normalize((out_ * mask).sum(1) / mask.sum(1), dim=-1)

    encoder.train()
    started = time.perf_counter()
    steps = max(1, pairs // batch)
    for step in range(steps):
        anchors = rng.sample(range(len(examples)), batch)
        positives = [rng.choice(by_label[label(examples[i])]) for i in anchors]
        negatives = [rng.choice(by_label[rng.choice([x for x in labels if x != label(examples[i])])]) for i in anchors]
        a, p, n = encode(anchors), encode(positives), encode(negatives)
        loss = ((a * p).sum(1) - 1).pow(2).mean() + (a * n).sum(1).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            log.info("fine-tuning step %d/%d loss %.3f (%.0fs)", step, steps, float(loss), time.perf_counter() - started)
    scale = 2.0  # alpha / rank with alpha = 2 * rank
    factors = {name: (w.a.detach().numpy(), w.b.detach().numpy() * 1.0) for name, w in wrapped.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    adapters.save(out, factors, scale)
    return out


def _wrap(encoder, rank: int) -> dict:
    """Replace each target linear layer with itself plus a trainable low-rank update; returns {module name: wrapper}."""
    import torch

    class LoRA(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(torch.randn(rank, base.in_features) * 0.01)
            self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

        def forward(self, x):
            return self.base(x) + (x @ self.a.T) @ self.b.T * 2.0

    wrapped = {}
    for name, module in list(encoder.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, torch.nn.Linear) and full.endswith(TARGETS) and ".layer." in f".{full}":
                wrapper = LoRA(child)
                setattr(module, child_name, wrapper)
                wrapped[full] = wrapper
    return wrapped


def embed_with(model_dir: Path, adapter: Path | None, texts: list[str]) -> np.ndarray:
    """Sentence vectors of the texts under the base model with the adapter merged (for checks and experiments)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    if adapter is not None:
        adapters.merge(model[0].auto_model, adapter)
    with torch.inference_mode():
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False, batch_size=64)
