"""The model under ONNX Runtime gives PyTorch's vectors without torch in the process, exports once, and falls back.

Most tests use the small bundled model (fast to export); the default model is held to the same vectors too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from index import onnx_runtime
from index.embed import SentenceTransformerEmbedder, bundled_model_path
from index.model_folder import UnsupportedModel, read_model_folder
from tests.conftest import ROOT

SMALL = "all-MiniLM-L6-v2"
QUESTIONS = ["Can I accept a follow from an ex-pupil aged 18?", "Who approved this policy?", "Insta?",
             "What should I do if a parent posts something abusive about me on the school's Facebook page after a match?"]


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    return tmp_path_factory.mktemp("small-models")


@pytest.fixture(scope="module")
def exported(small_models):
    embedder = SentenceTransformerEmbedder(SMALL, models_dir=small_models)
    assert embedder.runtime == "onnx"
    return embedder


@pytest.fixture(scope="module")
def pytorch():
    return SentenceTransformerEmbedder(SMALL, onnx=False)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def only_export(models_dir):
    [path] = (models_dir / "onnx").glob(f"*/{onnx_runtime.FILE}")
    return path


def test_the_exported_model_gives_pytorchs_vectors(pytorch, exported):
    assert pytorch.runtime == "torch"
    assert cosines(exported.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.9999
    assert not np.array_equal(exported.embed(QUESTIONS), pytorch.embed(QUESTIONS))  # equal to rounding: another runtime ran it
    for question in QUESTIONS:
        mine, (my_words,) = exported.embed_question(question)
        theirs, (their_words,) = pytorch.embed_question(question)
        assert float(np.sum(mine * theirs)) > 0.9999
        assert my_words.layer == their_words.layer == 4 and np.array_equal(my_words.ids, their_words.ids)
        assert cosines(my_words.vectors, their_words.vectors).min() > 0.9999  # the word layer, for ranking
        assert cosines(my_words.last, their_words.last).min() > 0.9999  # the last layer, for judging


@pytest.mark.model
def test_the_default_model_gives_pytorchs_vectors_too(embedder):
    theirs = SentenceTransformerEmbedder(onnx=False, models_dir=embedder._models_dir)
    assert embedder.runtime == "onnx" and embedder.word_layer == 8
    assert cosines(embedder.embed(QUESTIONS), theirs.embed(QUESTIONS)).min() > 0.9999


def test_a_process_with_the_export_never_imports_torch(exported, small_models):
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from index.embed import SentenceTransformerEmbedder\n"
            f"e = SentenceTransformerEmbedder({SMALL!r}, models_dir={str(small_models)!r})\n"
            "v = e.embed(['a question']); q, w = e.embed_question('can I post photos?')\n"
            "assert e.runtime == 'onnx', e.runtime\n"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_export_is_reused_by_the_next_process(exported, small_models):
    exported.embed(["load"])
    path = only_export(small_models)
    written = path.stat().st_mtime_ns
    again = SentenceTransformerEmbedder(SMALL, models_dir=small_models)
    assert again.runtime == "onnx"
    assert path.stat().st_mtime_ns == written and len(list(path.parent.parent.iterdir())) == 1
    assert path.stat().st_mode & 0o777 == 0o644  # readable by another account that runs the bot from the same folder


def test_another_word_layer_model_or_adapter_gets_its_own_export():
    folder = bundled_model_path()
    key = onnx_runtime._key("bundled:all-MiniLM-L6-v2", folder, 4)
    assert key == onnx_runtime._key("bundled:all-MiniLM-L6-v2", folder, 4)
    assert key != onnx_runtime._key("bundled:all-MiniLM-L6-v2", folder, 5)
    assert key != onnx_runtime._key("another-model", folder, 4)
    assert key != onnx_runtime._key("bundled:all-MiniLM-L6-v2+adapter-0123456789ab", folder, 4)


def test_a_models_folder_it_cannot_write_leaves_the_model_on_pytorch(tmp_path, pytorch, caplog):
    blocked = tmp_path / "models"
    blocked.write_text("a file where the models folder should be")
    embedder = SentenceTransformerEmbedder(SMALL, models_dir=blocked)
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        assert embedder.runtime == "torch"
    assert any("runs without ONNX Runtime" in r.getMessage() for r in caplog.records)
    assert cosines(embedder.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.99999  # still answers, with PyTorch


def test_settings_can_turn_onnx_runtime_off(tmp_path):
    from bot.runtime import Runtime
    from bot.settings import load_settings

    assert load_settings(env={}).onnx_runtime is True
    settings = load_settings(env={"POLICYBOT_ONNX_RUNTIME": "false", "POLICYBOT_DATA": str(tmp_path), "POLICYBOT_MODEL": SMALL})
    assert settings.onnx_runtime is False and Runtime(settings).embedder.runtime == "torch"


def test_a_damaged_export_is_exported_again(tmp_path, pytorch, caplog):
    first = SentenceTransformerEmbedder(SMALL, models_dir=tmp_path)
    assert first.runtime == "onnx"
    path = only_export(tmp_path)
    path.write_bytes(b"half a file, as a full disk leaves it")
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        again = SentenceTransformerEmbedder(SMALL, models_dir=tmp_path)
        assert again.runtime == "onnx"
    assert any("is unusable" in r.getMessage() for r in caplog.records)
    assert only_export(tmp_path) == path and path.stat().st_size > 1_000_000
    assert cosines(again.embed(QUESTIONS), pytorch.embed(QUESTIONS)).min() > 0.9999


def test_an_export_that_does_not_give_this_models_vectors_is_not_used(tmp_path, small_models, exported, caplog):
    """Another model's graph under this model's key (a copied folder, a stale cache): the check with PyTorch's own
    reference outputs refuses it, and it is exported again."""
    exported.embed(["load"])
    mine = only_export(small_models).parent
    target = tmp_path / "onnx" / mine.name
    target.mkdir(parents=True)
    for name in (onnx_runtime.FILE, onnx_runtime.NOTE):
        (target / name).write_bytes((mine / name).read_bytes())
    with np.load(mine / onnx_runtime.REFERENCE) as data:  # a reference another model would have written
        np.savez(target / onnx_runtime.REFERENCE, **{k: (data[k][::-1].copy() if k in ("last", "words", "sentences") else data[k]) for k in data.files})
    with caplog.at_level(logging.WARNING, logger="index.onnx_runtime"):
        embedder = SentenceTransformerEmbedder(SMALL, models_dir=tmp_path)
        assert embedder.runtime == "onnx"
    assert any("is unusable" in r.getMessage() and "differ from PyTorch" in r.getMessage() for r in caplog.records)


def fake_export(folder, days_old: float, word_layer: int | None = 4, note: bool = True):
    folder.mkdir(parents=True)
    (folder / onnx_runtime.FILE).write_bytes(b"an export")
    if note:
        (folder / onnx_runtime.NOTE).write_text(json.dumps({"word_layer": word_layer}))
    then = time.time() - days_old * 86400
    os.utime(folder / onnx_runtime.FILE, (then, then))
    return folder


def test_an_export_removes_the_models_older_exports_and_stale_temporary_files(tmp_path):
    name, model_dir = "bundled:all-MiniLM-L6-v2", bundled_model_path()
    key = onnx_runtime._key(name, model_dir, 4)
    onnx, folder = tmp_path / "onnx", tmp_path / "onnx" / key
    older = fake_export(onnx / (key[:-16] + "0" * 16), days_old=3)  # the same model and layer, before its weights or torch changed
    recent = fake_export(onnx / (key[:-16] + "1" * 16), days_old=0.1)  # another process may be starting from it
    other_layer = fake_export(onnx / (key[:-16] + "2" * 16), days_old=3, word_layer=3)  # still in use with that layer
    first_release = fake_export(onnx / (key[:-26] + "-" + "3" * 16), days_old=3, note=False)  # named without the model's hash
    another = fake_export(onnx / onnx_runtime._key("another-model", model_dir, 4), days_old=3)
    folder.mkdir()
    stale, fresh = folder / f"{onnx_runtime.TEMPORARY}stale.onnx", folder / f"{onnx_runtime.TEMPORARY}fresh.onnx"
    stale.write_bytes(b"left by an interrupted export")
    fresh.write_bytes(b"a rival process exporting now")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert onnx_runtime.load(name, read_model_folder(model_dir), 4, onnx) is not None
    assert not older.exists() and not first_release.exists()
    assert recent.is_dir() and other_layer.is_dir() and another.is_dir()
    assert not stale.exists() and fresh.exists()
    assert json.loads((folder / onnx_runtime.NOTE).read_text())["word_layer"] == 4


def test_a_folder_this_reader_cannot_run_without_torch_stays_on_pytorch(tmp_path):
    odd = tmp_path / "odd-model"
    odd.mkdir()
    (odd / "modules.json").write_text(json.dumps([{"idx": 0, "path": "", "type": "sentence_transformers.models.StaticEmbedding"}]))
    with pytest.raises(UnsupportedModel, match="StaticEmbedding"):
        read_model_folder(odd)


def test_onnx_runtime_writes_no_telemetry(tmp_path, small_models, exported):
    exported.embed(["load"])
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from index.embed import SentenceTransformerEmbedder\n"
            f"SentenceTransformerEmbedder({SMALL!r}, models_dir={str(small_models)!r}).embed(['a question'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".cache" / "Microsoft").exists()
