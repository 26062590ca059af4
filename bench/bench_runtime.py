"""Benchmark: the running bot against a naive one, measured in the same run, each in processes of its own.

Naive baseline: all-mpnet-base-v2 loaded with sentence-transformers on PyTorch, the
policies cut into 500-character chunks in a flat FAISS index, rebuilt at every start.
Ours: the bot's own runtime (bot/runtime.py) with the default model under ONNX
Runtime, its published index, and the safeguarding gate's own model.

    .venv/bin/python bench/bench_runtime.py [--questions FILE ...] [--repeats N]

Figures (each printed with ours/baseline):
- first_start_s: a new machine: empty data and models folders, to ready (the model assembled from its
  packages, exported, the policies indexed, the gate fitted);
- restart_s: the same folders again, to ready;
- p50_ms / p95_ms: a warm question through the whole answer path (ours: the gate, then the answer);
- peak_rss_mb: the process's peak resident memory after the questions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data"
DEFAULT_QUESTIONS = [ROOT.parent / "shared" / "eval" / "dev-questions.yaml", DATA / "holdout-questions.yaml"]
CHUNK_CHARS = 500


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load_rows(paths: list[Path]) -> list[dict]:
    import yaml

    return [row for path in paths if path.is_file() for row in yaml.safe_load(path.read_text(encoding="utf-8"))]


def _since_launch() -> float:
    """Seconds since the parent launched this process: interpreter start and imports included."""
    return time.time() - float(os.environ["BENCH_LAUNCHED"])


def ours(folder: Path, rows: list[dict], repeats: int) -> dict:
    from bot.core.conversation import Message
    from bot.core.schools import Place
    from bot.runtime import Runtime
    from bot.settings import load_settings

    runtime = Runtime(load_settings(env={}, policies_dir=ROOT / "policies", data_dir=folder / "data", models_dir=folder / "models"))
    runtime.ensure_index()
    runtime.warm()
    conversation = runtime.conversation()
    ready = _since_launch()

    def ask(row: dict) -> None:
        message = Message(user="bench", text=row["q"], place=Place("terminal"), raw_text=row["q"])
        conversation.reply(conversation.receive(message, school=row["school"]))

    return {"ready_s": ready, **_latency(ask, rows, repeats), "torch_imported": "torch" in sys.modules}


def baseline(folder: Path, rows: list[dict], repeats: int) -> dict:
    import faiss
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from index.catalogue import load_catalogue
    from index.packaged_models import MPNET, packaged_model_dir

    model = SentenceTransformer(str(packaged_model_dir(MPNET, folder / "models")), device="cpu")
    catalogue = load_catalogue(ROOT / "policies")
    texts, schools = [], []
    for school_id, school in catalogue.schools.items():
        for policy in school.policies:
            raw = (ROOT / "policies" / policy.file).read_text(encoding="utf-8")
            for start in range(0, len(raw), CHUNK_CHARS):
                texts.append(raw[start: start + CHUNK_CHARS])
                schools.append(school_id)
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    by_school = {s: np.array([i for i, x in enumerate(schools) if x == s], dtype=np.int64) for s in set(schools)}
    ready = _since_launch()

    def ask(row: dict) -> None:
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(by_school[row["school"]]))
        index.search(model.encode([row["q"]], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False), 5, params=params)

    return {"ready_s": ready, **_latency(ask, rows, repeats), "torch_imported": True}


def _latency(ask, rows: list[dict], repeats: int) -> dict:
    for row in rows[:5]:
        ask(row)  # warm
    latencies = []
    for _ in range(repeats):
        for row in rows:
            started = time.perf_counter()
            ask(row)
            latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(method: str, folder: Path, paths: list[Path], repeats: int) -> dict:
    args = [sys.executable, __file__, "--child", method, "--folder", str(folder), "--repeats", str(repeats), "--questions", *map(str, paths)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "BENCH_LAUNCHED": repr(time.time())}
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", nargs="+", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=["ours", "baseline"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    rows = load_rows(args.questions)
    if args.child:
        print(json.dumps((ours if args.child == "ours" else baseline)(args.folder, rows, args.repeats)))
        return
    figures = {}
    for method in ("baseline", "ours"):
        with tempfile.TemporaryDirectory() as tmp:  # a new machine: nothing assembled, exported or indexed
            first = child(method, Path(tmp), args.questions, args.repeats)
            again = child(method, Path(tmp), args.questions, args.repeats)
        figures[method] = {"first_start_s": first["ready_s"], "restart_s": again["ready_s"],
                           "p50_ms": again["p50_ms"], "p95_ms": again["p95_ms"], "peak_rss_mb": again["peak_rss_mb"],
                           "torch": again["torch_imported"]}
    b, o = figures["baseline"], figures["ours"]
    print(f"questions: {len(rows)} from {', '.join(p.name for p in args.questions if p.is_file())}, {args.repeats} passes; "
          f"{os.cpu_count()}-core CPU; torch imported by the running bot: ours {o['torch']}, baseline {b['torch']}")
    print(f"{'figure':16}{'baseline':>12}{'ours':>12}{'ours/baseline':>16}")
    for key in ("first_start_s", "restart_s", "p50_ms", "p95_ms", "peak_rss_mb"):
        print(f"{key:16}{b[key]:12.2f}{o[key]:12.2f}{o[key] / b[key]:15.2f}x")


if __name__ == "__main__":
    main()
