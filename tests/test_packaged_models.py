"""The packaged larger model: assembled from its PyPI parts, checked against pinned hashes, used for answers only.

The first tests build small split zips of their own (real files, real zipfile);
the rest use the real all-mpnet-base-v2 parts, which PolicyBot's install includes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from index.packaged_models import MPNET, VERIFIED, PackagedModel, PackagedModelError, assemble, installed_parts, packaged_model_dir
from tests.conftest import POLICIES

FILES = {"config.json": b'{"hidden_size": 8}', "1_Pooling/config.json": b'{"pooling": "mean"}', "model.safetensors": bytes(range(256)) * 40}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_zip(folder: Path, files: dict[str, bytes], pieces: int = 3) -> list[Path]:
    """A zip of `files` under `tiny/`, cut into `pieces` slices the way the PyPI parts are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tiny/desktop.ini", b"[.ShellClassInfo]")  # stray files in the zip are not unpacked
        for name, data in files.items():
            archive.writestr(f"tiny/{name}", data)
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    folder.mkdir(parents=True, exist_ok=True)
    slices = []
    for i in range(pieces):
        piece = folder / f"tiny.zip.00{i + 1}"
        piece.write_bytes(data[i * size : (i + 1) * size])
        slices.append(piece)
    return slices


TINY = PackagedModel(name="tiny", parts=("policybot-test-no-such-part-001",), folder="tiny",
                     files=tuple((name, sha(data)) for name, data in FILES.items()))


def test_assembles_the_slices_and_checks_every_file(tmp_path):
    target = assemble(TINY, split_zip(tmp_path / "parts", FILES), tmp_path / "models" / "tiny")
    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
    assert not (target / "desktop.ini").exists()
    assert (target / VERIFIED).is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny"]  # no work folders left


def test_a_file_that_does_not_match_its_pinned_hash_is_refused_and_nothing_is_left(tmp_path):
    swapped = {**FILES, "model.safetensors": b"weights from somewhere else"}  # a well-formed zip, other contents
    with pytest.raises(PackagedModelError, match="model.safetensors does not match the published SHA-256"):
        assemble(TINY, split_zip(tmp_path / "parts", swapped), tmp_path / "models" / "tiny")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_damaged_slice_gets_a_clear_error(tmp_path):
    slices = split_zip(tmp_path / "parts", FILES)
    damaged = bytearray(slices[1].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    slices[1].write_bytes(bytes(damaged))
    with pytest.raises(PackagedModelError, match="reinstall"):
        assemble(TINY, slices, tmp_path / "models" / "tiny")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_slice_gets_a_clear_error(tmp_path):
    with pytest.raises(PackagedModelError, match="reinstall"):
        assemble(TINY, split_zip(tmp_path / "parts", FILES)[:2], tmp_path / "models" / "tiny")


def test_parts_not_installed_name_the_pip_command():
    with pytest.raises(PackagedModelError, match=r"package policybot-test-no-such-part-001 is missing\); run: pip install policybot-test-no-such-part-001=="):
        installed_parts(TINY)


def test_a_verified_copy_is_used_as_it_is_and_a_damaged_one_assembled_again(tmp_path, monkeypatch):
    import index.packaged_models as packaged

    slices = split_zip(tmp_path / "parts", FILES)
    monkeypatch.setattr(packaged, "installed_parts", lambda model: slices)
    target = packaged_model_dir(TINY, tmp_path / "models")
    (target / "config.json").write_bytes(b"edited by hand")  # the marker is trusted: files are hashed once
    assert packaged_model_dir(TINY, tmp_path / "models") == target
    assert (target / "config.json").read_bytes() == b"edited by hand"
    (target / "model.safetensors").unlink()  # a file gone: assembled again from the parts
    (tmp_path / "models" / ".tiny-leftover-from-a-killed-run").mkdir()
    packaged_model_dir(TINY, tmp_path / "models")
    assert (target / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert not (tmp_path / "models" / ".tiny-leftover-from-a-killed-run").exists()


def test_a_copy_checked_against_other_pins_is_assembled_again(tmp_path, monkeypatch):
    import index.packaged_models as packaged

    slices = split_zip(tmp_path / "parts", FILES)
    monkeypatch.setattr(packaged, "installed_parts", lambda model: slices)
    target = packaged_model_dir(TINY, tmp_path / "models")
    (target / VERIFIED).write_text('{"model": "tiny", "sha256": {"config.json": "an older pin"}}')
    (target / "config.json").write_bytes(b"old")
    packaged_model_dir(TINY, tmp_path / "models")
    assert (target / "config.json").read_bytes() == FILES["config.json"]


def test_a_half_written_copy_is_replaced(tmp_path):
    target = tmp_path / "models" / "tiny"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"truncated")  # no VERIFIED marker: an interrupted earlier run
    assemble(TINY, split_zip(tmp_path / "parts", FILES), target)
    assert (target / "model.safetensors").read_bytes() == FILES["model.safetensors"]


# --- the real all-mpnet-base-v2 parts, and the small option ------------------------------------

def test_the_real_parts_assemble_to_the_upstream_model(embedder, models_dir):
    """The default model is assembled from its installed PyPI parts and checked against the upstream hashes."""
    assert len(installed_parts(MPNET)) == len(MPNET.parts)
    folder = packaged_model_dir(MPNET, models_dir)
    assert (folder / VERIFIED).is_file()
    assert embedder.name == "packaged:all-mpnet-base-v2"
    assert embedder.embed(["can I follow an ex-pupil?"]).shape == (1, 768)


def test_the_small_option_still_answers_from_each_schools_own_clause(tmp_path_factory, models_dir):
    """`model: all-MiniLM-L6-v2` (machines with little memory): its own index, its own calibrated thresholds."""
    from bot.core.answering import Question
    from bot.runtime import Runtime
    from bot.settings import load_settings

    data = tmp_path_factory.mktemp("minilm-data")
    runtime = Runtime(load_settings(env={}, policies_dir=POLICIES, data_dir=data, models_dir=models_dir, model="all-MiniLM-L6-v2"))
    runtime.build_index(progress=False)
    assert runtime.embedder.name == "bundled:all-MiniLM-L6-v2" and runtime.embedder.dimension == 384
    answer = runtime.answerer.answer(Question("can I accept a follow from an ex-pupil aged 18?", "chiltern"))
    assert answer.answered and "below the age of nineteen" in answer.citations[0].text
    assert all(c.school == "chiltern" for c in answer.citations)
