"""The bundled model under ONNX Runtime gives PyTorch's vectors, exports once, and falls back to PyTorch when it cannot."""

from __future__ import annotations

import json
import logging
import os
import time

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


def only_export(models_dir):
    [path] = (models_dir / "onnx").glob(f"*/{onnx_runtime.FILE}")
    return path


def test_the_exported_model_gives_pytorchs_vectors(pytorch, exported):
    assert exported._onnx is not None and pytorch._onnx is None
    assert only_export(exported._models_dir).is_file()  # exactly one
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
    path = only_export(exported._models_dir)
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


def test_a_damaged_export_is_exported_again(tmp_path, pytorch, caplog):
    first = SentenceTransformerEmbedder(models_dir=tmp_path)
    assert first._onnx is not None
    path = only_export(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by another account that runs the bot from the same folder
    path.write_bytes(b"half a file, as a full disk leaves it")
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        again = SentenceTransformerEmbedder(models_dir=tmp_path)
        assert again._onnx is not None
    assert any("is unusable" in r.getMessage() for r in caplog.records)
    assert only_export(tmp_path) == path and path.stat().st_size > 1_000_000
    assert cosines(again.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.9999


def test_an_export_that_does_not_give_this_models_vectors_is_not_used(tmp_path, pytorch, caplog):
    pytorch._model  # noqa: B018 - resolves the model folder
    # a graph of the same model without the word layer stands for a file written by another model or torch
    other = onnx_runtime.load(pytorch._model, pytorch.name, pytorch._path, None, tmp_path / "other")
    assert other is not None
    [wrong] = (tmp_path / "other").glob(f"*/{onnx_runtime.FILE}")
    target = tmp_path / "models" / "onnx" / onnx_runtime._key(pytorch.name, pytorch._path, 4) / onnx_runtime.FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(wrong.read_bytes())
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        embedder = SentenceTransformerEmbedder(models_dir=tmp_path / "models")
        assert embedder._onnx is not None
    assert any("is unusable" in r.getMessage() and "differ from PyTorch" in r.getMessage() for r in caplog.records)
    assert target.read_bytes() != wrong.read_bytes()
    mine, my_words = embedder.embed_question(QUESTIONS[0])
    theirs, their_words = pytorch.embed_question(QUESTIONS[0])
    assert cosines(my_words[0].vectors, their_words[0].vectors).min() > 0.9999


def fake_export(folder, days_old: float, word_layer: int | None = 4, note: bool = True):
    folder.mkdir(parents=True)
    (folder / onnx_runtime.FILE).write_bytes(b"an export")
    if note:
        (folder / onnx_runtime.NOTE).write_text(json.dumps({"word_layer": word_layer}))
    then = time.time() - days_old * 86400
    os.utime(folder / onnx_runtime.FILE, (then, then))
    return folder


def test_an_export_removes_the_models_older_exports_and_stale_temporary_files(tmp_path, pytorch):
    pytorch._model  # noqa: B018 - resolves the model folder
    key = onnx_runtime._key(pytorch.name, pytorch._path, 4)
    onnx, folder = tmp_path / "onnx", tmp_path / "onnx" / key
    # the same model and word layer, exported before its weights or torch changed
    older = fake_export(onnx / (key[:-16] + "0" * 16), days_old=3)
    recent = fake_export(onnx / (key[:-16] + "1" * 16), days_old=0.1)  # another process may be starting from it
    other_layer = fake_export(onnx / (key[:-16] + "2" * 16), days_old=3, word_layer=3)  # still in use with that layer
    first_release = fake_export(onnx / (key[:-26] + "-" + "3" * 16), days_old=3, note=False)  # named without the model's hash
    another = fake_export(onnx / onnx_runtime._key("another-model", pytorch._path, 4), days_old=3)
    folder.mkdir()
    stale, fresh = folder / f"{onnx_runtime.TEMPORARY}stale.onnx", folder / f"{onnx_runtime.TEMPORARY}fresh.onnx"
    stale.write_bytes(b"left by an interrupted export")
    fresh.write_bytes(b"a rival process exporting now")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert onnx_runtime.load(pytorch._model, pytorch.name, pytorch._path, 4, onnx) is not None
    assert not older.exists() and not first_release.exists()
    assert recent.is_dir() and other_layer.is_dir() and another.is_dir()
    assert not stale.exists() and fresh.exists()
    assert json.loads((folder / onnx_runtime.NOTE).read_text())["model"] == pytorch.name


def test_an_export_is_used_when_its_housekeeping_fails(tmp_path, pytorch, caplog):
    pytorch._model  # noqa: B018 - resolves the model folder
    folder = tmp_path / "onnx" / onnx_runtime._key(pytorch.name, pytorch._path, 4)
    (folder / onnx_runtime.NOTE).mkdir(parents=True)  # the note cannot be written, as on a full disk
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        assert onnx_runtime.load(pytorch._model, pytorch.name, pytorch._path, 4, tmp_path / "onnx") is not None
    assert any("could not tidy" in r.getMessage() for r in caplog.records)
    assert (folder / onnx_runtime.FILE).is_file()


def test_a_model_that_does_not_start_with_a_transformer_stays_on_pytorch(tmp_path, caplog):
    class Pooling:  # a model folder whose first module is not a Transformer: its graph would not be what ST runs
        pass

    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        assert onnx_runtime.load([Pooling()], "odd-model", tmp_path, None, tmp_path / "onnx") is None
    assert any("first module is Pooling" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "onnx").exists()
