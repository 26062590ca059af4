"""Shared fixtures: the real bundled model and a real FAISS index over the bundled policies."""

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
TEST_DATA = ROOT / "tests" / "data"  # the held-out, blind and dev-style sets
TODAY = dt.date(2026, 11, 21)


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    from index.embed import SentenceTransformerEmbedder

    # exported for ONNX Runtime once per session, into the session's folder rather than the checkout's data/
    return SentenceTransformerEmbedder(models_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory, embedder) -> Path:
    """The bundled policies, indexed once per session with the real model."""
    from index.publish import publish

    folder = tmp_path_factory.mktemp("index") / "index"
    publish(POLICIES, folder, embedder, progress=False)  # the same path as `policybot index`
    return folder


@pytest.fixture(scope="session")
def answerer(bundled_index, embedder):
    from bot.answer import Answerer
    from index.catalogue import load_catalogue
    from index.live import LiveIndex

    return Answerer(load_catalogue(POLICIES), LiveIndex(bundled_index, embedder), today=lambda: TODAY)


@pytest.fixture
def policies_copy(tmp_path) -> Path:
    """A writable copy of the bundled policies folder."""
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target
