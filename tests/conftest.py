"""Shared fixtures: the real default model, a real FAISS index over the bundled policies, the real safeguarding gate."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
SHARED_EVAL = ROOT.parent / "shared" / "eval"
TEST_DATA = ROOT / "tests" / "data"  # the held-out, blind, dev-style and first-look sets
TODAY = dt.date(2026, 11, 21)


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory) -> Path:
    """The session's models folder: each model is assembled and exported for ONNX Runtime here once, for this
    process and for every `policybot` process a test starts (POLICYBOT_MODELS)."""
    folder = tmp_path_factory.mktemp("models")
    os.environ["POLICYBOT_MODELS"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def embedder(models_dir):
    from index.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(models_dir=models_dir)


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, embedder) -> Path:
    """The bundled policies, indexed once per session with the real model."""
    from index.publish import publish

    folder = tmp_path_factory.mktemp("index") / "index"
    publish(POLICIES, folder, embedder, progress=False)  # the same path as `policybot index`
    return folder


@pytest.fixture(scope="session")
def answerer(bundled_index, embedder, models_dir):
    from bot.core.answering import Answerer
    from bot.core.coverage import coverage_for
    from bot.core.decision import decision_for
    from index.live import LiveIndex
    from index.vector_cache import VectorCache

    cache = VectorCache(embedder, models_dir / "cache")
    index = LiveIndex(bundled_index, embedder, policies_dir=POLICIES, reference_vectors=cache.vectors)
    return Answerer(index, coverage=coverage_for(embedder.name), today=lambda: TODAY, decision=decision_for(embedder.name))


@pytest.fixture(scope="session")
def gate_embedder(models_dir):
    """The gate's own model: the small model with its shipped adapter."""
    from bot.safeguarding.gate import ADAPTER, GATE_MODEL
    from index.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(GATE_MODEL, models_dir=models_dir, adapter=ADAPTER if ADAPTER.is_file() else None)


@pytest.fixture(scope="session")
def gate(gate_embedder, embedder, models_dir):
    """The gate as the bot runs it: its own model, and the answer model's reading beside it."""
    from bot.safeguarding.examples import SHIPPED, load_examples
    from bot.safeguarding.gate import SafeguardingGate

    gate = SafeguardingGate(gate_embedder, load_examples([SHIPPED]), models_dir / "cache", reader=embedder)
    gate.warm()
    return gate


@pytest.fixture
def policies_copy(tmp_path) -> Path:
    """A writable copy of the bundled policies folder."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target
