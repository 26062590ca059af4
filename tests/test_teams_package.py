"""The Teams app package: the manifest with the app id filled in, and the two icons drawn with zlib and struct."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib

import pytest
from click.testing import CliRunner

from bot.teams.package import DEPLOY, PackageError, build, icons, png, teams_package

APP_ID = "00000000-1111-2222-3333-444444444444"


def size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_package_has_the_manifest_with_the_app_id_and_both_icons(tmp_path):
    path = build(APP_ID, tmp_path / "policybot.zip")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        assert size(archive.read("color.png")) == (192, 192) and size(archive.read("outline.png")) == (32, 32)
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert float(manifest["manifestVersion"]) >= 1.17 and "v1.17" in manifest["$schema"]
    assert manifest["bots"][0]["scopes"] == ["personal", "team"]
    commands = {c["title"] for listed in manifest["bots"][0]["commandLists"] for c in listed["commands"]}
    assert {"status", "report", "school"} <= commands
    assert manifest["validDomains"] == [] and "{{" not in json.dumps(manifest)


def test_the_source_manifest_keeps_its_placeholder():
    text = (DEPLOY / "manifest.json").read_text(encoding="utf-8")
    assert text.count("{{MICROSOFT_APP_ID}}") == 2


def test_an_app_id_that_is_not_a_guid_is_refused(tmp_path):
    with pytest.raises(PackageError, match="not an app id"):
        build("my-bot", tmp_path / "x.zip")


def test_the_command_writes_the_zip(tmp_path):
    result = CliRunner().invoke(teams_package, ["--app-id", APP_ID, "--output", str(tmp_path / "app.zip")])
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / "app.zip")


def test_icons_are_drawn_as_the_manifest_needs(tmp_path):
    colour, outline = icons(tmp_path)
    assert size(colour.read_bytes()) == (192, 192) and size(outline.read_bytes()) == (32, 32)
    assert colour.read_bytes() == (DEPLOY / "color.png").read_bytes()  # the committed icons are these
    assert outline.read_bytes() == (DEPLOY / "outline.png").read_bytes()


def test_outline_is_white_on_transparent():
    data = (DEPLOY / "outline.png").read_bytes()
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4: idat])[0]
    rows = zlib.decompress(data[idat + 4: idat + 4 + length])
    pixels = {rows[r * (32 * 4 + 1) + 1 + c * 4: r * (32 * 4 + 1) + 1 + c * 4 + 4] for r in range(32) for c in range(32)}
    assert pixels == {b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"}


def test_png_writer_round_trips_a_pixel():
    data = png(2, 1, lambda x, y: (x * 255, 0, 0, 255))
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4: idat])[0]
    assert zlib.decompress(data[idat + 4: idat + 4 + length]) == b"\x00" + bytes((0, 0, 0, 255, 255, 0, 0, 255))
