"""Maintainers' tools for the safeguarding gate (not used by a running bot).

    python -m bot.safeguarding.maintain lowo [--c 10] [--sets FILE ...]
        Leave-one-writer-out: for each writer's file in bot/safeguarding/examples/, fit on every other file and
        score that one; then each --sets file (held-out case files) with the gate fitted on everything. Prints
        concerns forwarded, offered the report, missed, false alarms, offers on ordinary messages, right route.
    python -m bot.safeguarding.maintain ship
        Write bot/safeguarding/vectors/<model>.npz for the gate's model and the default answer model: the shipped
        examples' vectors, so a first start embeds only what a DSL added (index/vector_cache.py).
    python -m bot.safeguarding.maintain finetune [--pairs 8000]
        Fine-tune the gate's model on the shipped examples (bot/safeguarding/finetune.py) and write its adapter to
        bot/safeguarding/adapter/; run `ship` after it.
    python -m bot.safeguarding.maintain lowo --finetune [--writers writer-a1 ...]
        Leave-one-writer-out with the fine-tuning too: the adapter is trained without the writer it scores
        (about twenty minutes a writer on two cores).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from bot.safeguarding.examples import SHIPPED, Example, load_examples, read_case_file
from bot.safeguarding.gate import ADAPTER, GATE_MODEL, SHIPPED_VECTORS, SafeguardingGate, Thresholds, fit
from bot.safeguarding.noise import noise_examples
from index import vector_cache
from index.embed import SentenceTransformerEmbedder


def _embedder(models: Path, adapter: Path | None = ADAPTER) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(GATE_MODEL, models_dir=models, adapter=adapter if adapter and adapter.is_file() else None)


def _reader(models: Path) -> SentenceTransformerEmbedder:
    """The default answer model, whose reading the gate sees beside its own."""
    return SentenceTransformerEmbedder(models_dir=models)


def _reading(models: Path, embedder) -> SafeguardingGate:
    """A gate that only reads: its `features` are the rows the regressions see, from the same caches as the bot's."""
    return SafeguardingGate(embedder, [], models / "cache", reader=_reader(models))


def score(gate_heads, thresholds: Thresholds, vectors: np.ndarray, examples: list[Example]) -> Counter:
    """Counts for one scored file (whole-message vectors: the files hold chat-length messages)."""
    counts: Counter = Counter()
    probabilities = gate_heads.concern(vectors)
    for example, vector, p in zip(examples, vectors, probabilities):
        level = "concern" if p >= thresholds.concern else "unsure" if p >= thresholds.unsure else "none"
        if example.concern:
            counts["concerns"] += 1
            counts[f"concern-{level}"] += 1
            if level == "concern" and example.recipient is not None:
                counts["routed"] += 1
                counts["right-route"] += gate_heads.recipient(vector) == example.recipient
        else:
            counts["ordinary"] += 1
            counts[f"ordinary-{level}"] += 1
    return counts


def line(name: str, c: Counter) -> str:
    return (f"{name:28} forwarded {c['concern-concern']}/{c['concerns']}, offered {c['concern-unsure']}, missed {c['concern-none']} | "
            f"false alarms {c['ordinary-concern']}/{c['ordinary']}, offers {c['ordinary-unsure']} | "
            f"right route {c['right-route']}/{c['routed']}")


def lowo(models: Path, c: float, sets: list[Path], tune: bool = False, writers: list[str] | None = None, pairs: int = 8000) -> None:
    thresholds = Thresholds(c=c)
    examples = load_examples([SHIPPED])
    sources = np.array([e.source for e in examples])
    total: Counter = Counter()
    for source in sorted(set(sources)):
        if not source.startswith("writer-") or (writers and source not in writers):
            continue  # developers' examples, the dev set and policy questions are always trained on
        keep = sources != source
        training = [e for e, k in zip(examples, keep) if k]
        if tune:  # the adapter too is trained without this writer
            from bot.safeguarding.finetune import finetune

            base = _embedder(models, adapter=None)
            adapter = finetune(base.model_dir, training, models / "lowo" / f"adapter-without-{source}.npz", pairs=pairs)
            embedder = _embedder(models, adapter)
        else:
            embedder = _embedder(models)
        reading = _reading(models, embedder)
        vectors = reading.features([e.text for e in examples])
        noise = noise_examples()
        heads = fit(np.vstack([vectors[keep], reading.features([e.text for e in noise])]), training + noise, c, own=embedder.dimension)
        counts = score(heads, thresholds, vectors[~keep], [e for e, k in zip(examples, keep) if not k])
        total += counts
        print(line(source, counts), flush=True)
    print(line("leave-one-writer-out, all", total))
    reading = _reading(models, _embedder(models))
    vectors = reading.features([e.text for e in examples])
    if sets:
        noise = noise_examples()
        heads = fit(np.vstack([vectors, reading.features([e.text for e in noise])]), examples + noise, c, own=reading.embedder.dimension)
        held: Counter = Counter()
        for path in sets:
            cases = read_case_file(path)
            counts = score(heads, thresholds, reading.features([e.text for e in cases]), cases)
            held += counts
            print(line(Path(path).stem, counts), flush=True)
        print(line("held-out sets, all", held))


def ship(models: Path) -> None:
    """The examples' vectors by the gate's model and by the default answer model, so a first start embeds none."""
    examples = load_examples([SHIPPED])
    texts = list(dict.fromkeys(e.text for e in examples + noise_examples()))
    for embedder in (_embedder(models), _reader(models)):
        cache = vector_cache.VectorCache(embedder, models / "cache")
        vectors = cache.vectors(texts)
        target = SHIPPED_VECTORS / f"{vector_cache.slug(embedder.name)}.npz"
        for old in SHIPPED_VECTORS.glob(f"{vector_cache.slug(embedder.name)}.npz"):
            old.unlink()
        vector_cache.write(target, embedder, {vector_cache.text_key(t): v for t, v in zip(texts, vectors)})
        print(f"wrote {len(texts)} vectors to {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.safeguarding.maintain")
    parser.add_argument("command", choices=["lowo", "ship", "finetune"])
    parser.add_argument("--models", type=Path, default=Path("data/models"))
    parser.add_argument("--c", type=float, default=Thresholds.c)
    parser.add_argument("--sets", type=Path, nargs="*", default=[])
    parser.add_argument("--finetune", action="store_true", help="lowo: train the adapter without each writer too")
    parser.add_argument("--writers", nargs="*", default=None)
    parser.add_argument("--pairs", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "lowo":
        lowo(args.models, args.c, args.sets, args.finetune, args.writers, args.pairs)
    elif args.command == "finetune":
        from bot.safeguarding.finetune import finetune

        finetune(_embedder(args.models, adapter=None).model_dir, load_examples([SHIPPED]), ADAPTER, pairs=args.pairs)
        print(f"wrote {ADAPTER}; now run: python -m bot.safeguarding.maintain ship")
    else:
        ship(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
