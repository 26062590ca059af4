"""The bundled model under ONNX Runtime gives PyTorch's vectors, exports once, and falls back to PyTorch when it cannot."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from index import onnx_runtime
from index.embed import SentenceTransformerEmbedder

QUESTIONS = ["Can I accept a follow from an ex-pupil aged 18?", "Who approved this policy?", "Insta?",
             "What should I do if a parent posts something abusive about me on the school's Facebook page after a match?"]


@pytest.fixture(scope="module")
def pytorch():
    return SentenceTransformerEmbedder(onnx=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return SentenceTransformerEmbedder(models_dir=tmp_path_factory.mktemp("models"))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_the_exported_model_gives_pytorchs_vectors(pytorch, exported):
    assert exported._onnx is not None and pytorch._onnx is None
    assert len(list((exported._models_dir / "onnx").glob(f"*/{onnx_runtime.FILE}"))) == 1
    # sentence vectors of a padded batch (texts of very different lengths), as the index and the safeguarding gate embed
    assert cosines(exported.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.9999
    assert not np.array_equal(exported.embed(QUESTIONS), pytorch.embed(QUESTIONS))  # equal to rounding: another runtime ran it
    for question in QUESTIONS:
        mine, my_words = exported.embed_question(question, ("Can I accept a follow from a former student aged 18?",))
        theirs, their_words = pytorch.embed_question(question, ("Can I accept a follow from a former student aged 18?",))
        assert float(np.sum(mine * theirs)) > 0.9999
        for a, b in zip(my_words, their_words):
            assert a.layer == b.layer == 4 and np.array_equal(a.ids, b.ids)
            assert cosines(a.vectors, b.vectors).min() > 0.9999  # the word layer, for ranking
            assert cosines(a.last, b.last).min() > 0.9999  # the last layer, for judging


def test_the_export_is_reused_by_the_next_process(exported):
    exported._onnx  # noqa: B018 - exported on first use
    [path] = (exported._models_dir / "onnx").glob(f"*/{onnx_runtime.FILE}")
    written = path.stat().st_mtime_ns
    again = SentenceTransformerEmbedder(models_dir=exported._models_dir)
    assert again._onnx is not None
    assert path.stat().st_mtime_ns == written and len(list(path.parent.parent.iterdir())) == 1


def test_another_word_layer_or_model_gets_its_own_export(pytorch):
    pytorch._model  # noqa: B018 - resolves the model folder
    key = onnx_runtime._key(pytorch.name, pytorch._path, 4)
    assert key == onnx_runtime._key(pytorch.name, pytorch._path, 4)
    assert key != onnx_runtime._key(pytorch.name, pytorch._path, 5)
    assert key != onnx_runtime._key("another-model", pytorch._path, 4)


def test_a_models_folder_it_cannot_write_leaves_the_model_on_pytorch(tmp_path, pytorch, caplog):
    blocked = tmp_path / "models"
    blocked.write_text("a file where the models folder should be")
    embedder = SentenceTransformerEmbedder(models_dir=blocked)
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        assert embedder._onnx is None
    assert any("runs without ONNX Runtime" in r.getMessage() for r in caplog.records)
    assert cosines(embedder.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.99999  # still answers, with PyTorch


def test_settings_can_turn_onnx_runtime_off(tmp_path):
    from bot.runtime import Runtime
    from bot.settings import load_settings

    assert load_settings(env={}).onnx_runtime is True
    settings = load_settings(env={"POLICYBOT_ONNX_RUNTIME": "false", "POLICYBOT_DATA": str(tmp_path)})
    runtime = Runtime(settings)
    assert settings.onnx_runtime is False and runtime.embedder._onnx is None and runtime.safeguarding_embedder._onnx is None
