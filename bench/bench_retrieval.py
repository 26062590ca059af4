"""Benchmark: our index against a naive baseline, measured in the same run.

Baseline: fixed 500-character chunks, dense-only search (same model, same FAISS).
Ours: structure-aware chunks, sentence-level passages, dense + lexical blend.
Each method runs in its own child process so peak memory is its own.

    .venv/bin/python bench/bench_retrieval.py [--questions FILE ...] [--repeats N] [--model all-mpnet-base-v2] [--torch]

Prints index build time, warm question latency p50/p95, peak RSS and hit@1/3/5,
and every figure of ours as a ratio to the baseline. `--model` runs ours with another
embedding model (the baseline keeps the default one), to weigh a larger model's cost;
`--torch` runs both models with PyTorch instead of ONNX Runtime (index/onnx_runtime.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
DEFAULT_QUESTIONS = [ROOT.parent / "shared" / "eval" / "dev-questions.yaml", DATA / "holdout-questions.yaml",
                     *(DATA / f"blind{n}-questions.yaml" for n in ("", "2", "3", "4", "5", "6"))]
BASELINE_CHARS = 500


def squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load_rows(paths: list[Path]) -> list[dict]:
    import yaml

    rows = []
    for path in paths:
        if path.is_file():
            rows.extend(yaml.safe_load(path.read_text(encoding="utf-8")))
    return rows


def run_ours(rows: list[dict], repeats: int, model: str | None = None, onnx: bool = True) -> dict:
    from index.publish import publish
    from index.embed import SentenceTransformerEmbedder
    from index.live import LiveIndex

    embedder = SentenceTransformerEmbedder(model, models_dir=ROOT / "data" / "models", onnx=onnx)
    embedder.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        publish(ROOT / "policies", Path(tmp) / "index", embedder, progress=False)
        build_s = time.perf_counter() - started
        retriever = LiveIndex(Path(tmp) / "index", embedder).current().retriever
        search = lambda q, s: [h.chunk.text for h in retriever.search(q, s, k=5)]  # noqa: E731
        return {"build_s": build_s, **measure(search, rows, repeats)}


def run_baseline(rows: list[dict], repeats: int, onnx: bool = True) -> dict:
    import faiss
    import numpy as np

    from index.catalogue import load_catalogue
    from index.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(models_dir=ROOT / "data" / "models", onnx=onnx)
    embedder.embed(["warm up"])
    started = time.perf_counter()
    catalogue = load_catalogue(ROOT / "policies")
    texts, schools = [], []
    for school_id, school in catalogue.schools.items():
        for policy in school.policies:
            raw = (ROOT / "policies" / policy.file).read_text(encoding="utf-8")
            for start in range(0, len(raw), BASELINE_CHARS):
                texts.append(raw[start : start + BASELINE_CHARS])
                schools.append(school_id)
    vectors = embedder.embed(texts)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    build_s = time.perf_counter() - started
    ids_by_school = {s: np.array([i for i, x in enumerate(schools) if x == s], dtype=np.int64) for s in set(schools)}

    def search(question: str, school: str) -> list[str]:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids_by_school[school]))
        _, ids = index.search(embedder.embed([question]), 5, params=params)
        return [texts[i] for i in ids[0] if i >= 0]

    return {"build_s": build_s, **measure(search, rows, repeats)}


def measure(search, rows: list[dict], repeats: int) -> dict:
    answerable = [r for r in rows if r.get("answered", True) is not False]
    hits = {1: 0, 3: 0, 5: 0}
    for row in answerable:
        found = search(row["q"], row["school"])
        gold = squash(row["gold"])
        rank = next((i for i, text in enumerate(found) if gold in squash(text)), None)
        for k in hits:
            hits[k] += rank is not None and rank < k
    latencies = []
    for _ in range(repeats):
        for row in rows:
            started = time.perf_counter()
            search(row["q"], row["school"])
            latencies.append((time.perf_counter() - started) * 1000)
    return {
        "questions": len(answerable),
        **{f"hit@{k}": v / max(len(answerable), 1) for k, v in hits.items()},
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(method: str, paths: list[Path], repeats: int, model: str | None = None, torch: bool = False) -> dict:
    args = [sys.executable, __file__, "--child", method, "--repeats", str(repeats), "--questions", *map(str, paths)]
    args += (["--model", model] if model else []) + (["--torch"] if torch else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["ours", "baseline"])
    parser.add_argument("--model", help="embedding model for ours (default: all-mpnet-base-v2)")
    parser.add_argument("--torch", action="store_true", help="run the models with PyTorch, not ONNX Runtime")
    args = parser.parse_args()
    rows = load_rows(args.questions)
    if args.child:
        onnx = not args.torch
        result = run_ours(rows, args.repeats, args.model, onnx) if args.child == "ours" else run_baseline(rows, args.repeats, onnx)
        print(json.dumps(result))
        return
    baseline = child("baseline", args.questions, args.repeats, torch=args.torch)
    ours = child("ours", args.questions, args.repeats, args.model, args.torch)
    print(f"ours: model {args.model or 'all-mpnet-base-v2 (the default)'}; baseline: the default model; "
          f"both run with {'PyTorch' if args.torch else 'ONNX Runtime'}")
    print(f"questions: {ours['questions']} answerable from {', '.join(p.name for p in args.questions if p.is_file())}; "
          f"latency over {args.repeats} passes of every question; 2-core CPU")
    print(f"{'figure':14}{'baseline':>12}{'ours':>12}{'ours/baseline':>16}")
    for key in ("build_s", "p50_ms", "p95_ms", "peak_rss_mb", "hit@1", "hit@3", "hit@5"):
        b, o = baseline[key], ours[key]
        ratio = f"{o / b:.2f}x" if b else "n/a"
        print(f"{key:14}{b:12.3f}{o:12.3f}{ratio:>16}")


if __name__ == "__main__":
    main()
