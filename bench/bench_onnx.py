"""Benchmark: a question's pass through the model under ONNX Runtime against PyTorch, measured in the same run.

    .venv/bin/python bench/bench_onnx.py [--model all-mpnet-base-v2] [--repeats N]

For every question of the dev set (with the synonym rewording search adds when it
has one, as answering does), prints the question pass's p50/p95 under each runtime,
their ratio, and how far apart the vectors are: the lowest cosine between the two
runtimes' sentence vectors and word vectors (index/onnx_runtime.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTIONS = ROOT.parent / "shared" / "eval" / "dev-questions.yaml"

from bench_retrieval import percentile  # noqa: E402 - this folder is on the path when a script in it runs


def main() -> None:
    import yaml

    from index.embed import SentenceTransformerEmbedder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="embedding model (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    questions = [row["q"] for row in yaml.safe_load(args.questions.read_text(encoding="utf-8"))]
    runtimes = {name: SentenceTransformerEmbedder(args.model, models_dir=ROOT / "data" / "models", onnx=name == "onnx")
                for name in ("torch", "onnx")}
    if runtimes["onnx"]._onnx is None:
        sys.exit("ONNX Runtime could not load this model; see the warning above")
    vectors = {name: [embedder.embed_question(q) for q in questions] for name, embedder in runtimes.items()}  # also warms up
    sentence = min(float(a[0] @ b[0].T) for (a, _), (b, _) in zip(vectors["torch"], vectors["onnx"]))
    words = min(float(np.min(np.sum(x.vectors * y.vectors, axis=1))) for (_, a), (_, b) in zip(vectors["torch"], vectors["onnx"])
                for x, y in zip(a, b) if len(x.ids))
    timings: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(args.repeats):
        for question in questions:
            for name, embedder in runtimes.items():  # interleaved, so both see the same machine
                started = time.perf_counter()
                embedder.embed_question(question)
                timings[name].append((time.perf_counter() - started) * 1000)
    print(f"model {runtimes['torch'].name}; {len(questions)} questions x {args.repeats}; {os.cpu_count()} CPUs")
    print(f"{'figure':10}{'PyTorch':>10}{'ONNX RT':>10}{'ONNX/PyTorch':>14}")
    for label, q in (("p50_ms", 0.5), ("p95_ms", 0.95)):
        t, o = percentile(timings["torch"], q), percentile(timings["onnx"], q)
        print(f"{label:10}{t:10.1f}{o:10.1f}{o / t:13.2f}x")
    print(f"lowest cosine between the runtimes: sentence vectors {sentence:.6f}, word vectors {words:.6f}")


if __name__ == "__main__":
    main()
