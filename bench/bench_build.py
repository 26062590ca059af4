"""Full and incremental build times and peak memory, for the sample corpus and one 100 times larger.

    .venv/bin/python bench/bench_build.py                 # a few minutes on 2 cores
    .venv/bin/python bench/bench_build.py --large-model real   # the large corpus with the real model too (slow)

The sample corpus (policies/) is built with the real bundled model. The large
corpus is generated: `--scale` synthetic schools (default 100), each holding
every sample policy with its numbers reworded, so no two documents are equal.
By default it is built with a hashing embedder of the model's dimension, which
measures everything except the model (loading, chunking, storing, reusing
vectors, validating); the real model's cost at that size is printed as a
projection from its measured throughput. An incremental build changes one clause
in one policy. Memory: peak Python heap per build (tracemalloc, numpy included;
FAISS and torch allocate outside it) and the process's peak RSS so far.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index import publish  # noqa: E402
from index.embed import Embedder, SentenceTransformerEmbedder  # noqa: E402
from index.tokens import TokenVectors  # noqa: E402


class HashEmbedder(Embedder):
    """Deterministic unit vectors from text hashes: the cost of everything but the model."""

    def __init__(self, name: str, dimension: int):
        self.name, self._dimension = name, dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts):
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self._dimension)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_tokens(self, texts):
        """One hashed vector per word, the word's hash as its id."""
        out = []
        for text in texts:
            pieces = text.lower().split()
            ids = np.array([int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") for w in pieces], np.int64)
            vectors = self.embed(pieces) if pieces else np.zeros((0, self._dimension), np.float32)
            out.append(TokenVectors(ids, vectors, vectors))
        return out


class Counting(Embedder):
    def __init__(self, real: Embedder):
        self.real, self.name, self.word_layer, self.count, self.seconds = real, real.name, real.word_layer, 0, 0.0

    @property
    def dimension(self) -> int:
        return self.real.dimension

    def embed(self, texts):
        started = time.perf_counter()
        vectors = self.real.embed(texts)
        self.seconds += time.perf_counter() - started
        self.count += len(texts)
        return vectors

    def embed_tokens(self, texts):
        started = time.perf_counter()
        pieces = self.real.embed_tokens(texts)
        self.seconds += time.perf_counter() - started
        return pieces


def synthetic_corpus(target: Path, scale: int) -> int:
    """`scale` schools, each with every sample policy, numbers reworded; returns the number of documents."""
    import yaml

    sample = yaml.safe_load((ROOT / "policies" / "catalogue.yaml").read_text(encoding="utf-8"))["schools"]
    rng = random.Random(7)
    schools = {}
    for n in range(scale):
        school_id = f"school-{n:03d}"
        policies = []
        for source_id, school in sorted(sample.items()):
            for policy in school["policies"]:
                text = (ROOT / "policies" / policy["file"]).read_text(encoding="utf-8")
                # reword numbers that are not clause numbers: ages, years, days
                text = re.sub(r"(?<![\d.])\b(1[0-9]|2[0-9]|[3-9][0-9])\b(?![.\d])", lambda m: str(int(m.group(1)) + rng.randint(1, 5)), text)
                text = text.replace("Social Media", f"Social Media ({school_id})", 1)
                file = f"{school_id}/{source_id}-{policy['id']}.txt"
                (target / school_id).mkdir(parents=True, exist_ok=True)
                (target / file).write_text(text, encoding="utf-8")
                policies.append({"id": f"{source_id}-{policy['id']}", "file": file, "title": policy["title"]})
        schools[school_id] = {"name": f"Synthetic School {n}", "ask": "the head", "policies": policies}
    (target / "catalogue.yaml").write_text(yaml.safe_dump({"schools": schools}), encoding="utf-8")
    return sum(len(s["policies"]) for s in schools.values())


def change_one_clause(policies: Path) -> None:
    path = sorted(p for p in policies.rglob("*.txt"))[0]
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    i = max(range(len(lines)), key=lambda k: len(lines[k]))  # the longest paragraph
    lines[i] = lines[i].replace(" the ", " the revised ", 1)
    path.write_text("\n".join(lines), encoding="utf-8")


def measure(label: str, policies: Path, index_dir: Path, embedder: Embedder) -> dict:
    counting = Counting(embedder)
    tracemalloc.start()
    started = time.perf_counter()
    report = publish.publish(policies, index_dir, counting, progress=False)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = dict(label=label, seconds=seconds, embedded=report.embedded, reused=report.reused,
               embed_seconds=counting.seconds, heap_mb=peak / 2**20, rss_mb=rss)
    print(f"{label:44} {seconds:8.1f}s  embedded {report.embedded:6d} (model {counting.seconds:6.1f}s)  "
          f"reused {report.reused:6d}  peak heap {row['heap_mb']:7.1f} MB  peak RSS {rss:7.0f} MB", flush=True)
    return row


def run(name: str, policies: Path, work: Path, embedder: Embedder) -> tuple[dict, dict]:
    index_dir = work / "index"
    full = measure(f"{name}: full build", policies, index_dir, embedder)
    change_one_clause(policies)
    incremental = measure(f"{name}: incremental (1 clause in 1 policy)", policies, index_dir, embedder)
    return full, incremental


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="copies of the sample corpus in the large corpus")
    parser.add_argument("--large-model", choices=("hash", "real"), default="hash")
    args = parser.parse_args()

    real = SentenceTransformerEmbedder(models_dir=ROOT / "data" / "models")
    started = time.perf_counter()
    dimension = real.dimension
    print(f"model load: {time.perf_counter() - started:.1f}s, dimension {dimension}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copytree(ROOT / "policies", tmp / "sample" / "policies")
        full, _ = run("sample (5 policies), real model", tmp / "sample" / "policies", tmp / "sample", real)
        rate = full["embedded"] / full["embed_seconds"]

        large = tmp / "large" / "policies"
        large.mkdir(parents=True)
        started = time.perf_counter()
        documents = synthetic_corpus(large, args.scale)
        print(f"generated {documents} policies for {args.scale} schools in {time.perf_counter() - started:.1f}s")
        embedder = real if args.large_model == "real" else HashEmbedder(real.name, dimension)
        label = f"x{args.scale} ({documents} policies), {args.large_model} embedder"
        large_full, large_incremental = run(label, large, tmp / "large", embedder)
        if args.large_model == "hash":
            projected = large_full["embedded"] / rate
            print(f"projected real-model full build at x{args.scale}: {large_full['seconds'] + projected:.0f}s "
                  f"({large_full['embedded']} passages at the measured {rate:.0f} passages/s); "
                  f"incremental: {large_incremental['seconds'] + large_incremental['embedded'] / rate:.1f}s")


if __name__ == "__main__":
    main()
