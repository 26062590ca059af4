"""`policybot teams-package --app-id ...`: the Teams app package (a zip of manifest.json and two icons) to upload
in the Teams admin centre or Developer Portal.

deploy/teams/ holds the manifest with the placeholder {{MICROSOFT_APP_ID}} and the icons; `icons()` draws them
again (192x192 colour, 32x32 white-on-transparent outline) with zlib and struct only.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from pathlib import Path

import click

from index.errors import PolicyBotError

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "teams"
PLACEHOLDER = "{{MICROSOFT_APP_ID}}"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
COLOUR = (0x1F, 0x4E, 0x79)  # the colour icon's background


class PackageError(PolicyBotError):
    pass


def manifest(app_id: str, source: Path = DEPLOY / "manifest.json") -> dict:
    """The manifest with the app id filled in (the Teams app id and the bot id are the Azure Bot's app id)."""
    if not GUID.match(app_id or ""):
        raise PackageError(f"{app_id!r} is not an app id; pass the Azure Bot's Microsoft App ID (a GUID) with --app-id.")
    text = source.read_text(encoding="utf-8")
    if PLACEHOLDER not in text:
        raise PackageError(f"{source} has no {PLACEHOLDER} placeholder; restore it from git.")
    return json.loads(text.replace(PLACEHOLDER, app_id))


def build(app_id: str, output: Path, source: Path = DEPLOY) -> Path:
    data = manifest(app_id, source / "manifest.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        for icon in ("color.png", "outline.png"):
            path = source / icon
            if not path.is_file():
                raise PackageError(f"No {path}; run `policybot teams-package --icons` to draw it.")
            archive.write(path, icon)
    return output


# -- icons ------------------------------------------------------------------------------------------

def png(width: int, height: int, pixel) -> bytes:
    """An RGBA PNG; `pixel(x, y)` gives (r, g, b, a)."""
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _shield(x: float, y: float) -> bool:
    """A shield, in the unit square (its lower part narrows to a point)."""
    if not (0.2 <= x <= 0.8 and 0.12 <= y <= 0.9):
        return False
    if y > 0.6:  # the shield's point
        half = 0.3 * (0.9 - y) / 0.3
        return abs(x - 0.5) <= half
    return True


def _page(x: float, y: float) -> bool:
    """A page with three lines of text, cut out of the shield."""
    return 0.34 <= x <= 0.66 and 0.24 <= y <= 0.62 and not (0.40 <= x <= 0.60 and (0.32 <= y <= 0.35 or 0.41 <= y <= 0.44 or 0.50 <= y <= 0.53))


def icons(target: Path = DEPLOY) -> tuple[Path, Path]:
    """Draw color.png (192x192: a white shield and page on blue) and outline.png (32x32: white on transparent)."""
    def colour(x: int, y: int):
        u, v = (x + 0.5) / 192, (y + 0.5) / 192
        if _shield(u, v) and not _page(u, v):
            return (255, 255, 255, 255)
        return (*COLOUR, 255)

    def outline(x: int, y: int):
        u, v = (x + 0.5) / 32, (y + 0.5) / 32
        return (255, 255, 255, 255) if _shield(u, v) and not _page(u, v) else (0, 0, 0, 0)

    target.mkdir(parents=True, exist_ok=True)
    color_path, outline_path = target / "color.png", target / "outline.png"
    color_path.write_bytes(png(192, 192, colour))
    outline_path.write_bytes(png(32, 32, outline))
    return color_path, outline_path


@click.command("teams-package")
@click.option("--app-id", envvar="MICROSOFT_APP_ID", help="The Azure Bot's Microsoft App ID (a GUID).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("policybot-teams.zip"), show_default=True,
              help="Where to write the app package.")
@click.option("--icons", "draw", is_flag=True, help="Draw deploy/teams/color.png and outline.png again first.")
def teams_package(app_id, output, draw):
    """Build the Teams app package (manifest.json with the app id, and the two icons) as a zip."""
    if draw:
        icons()
    if not app_id:
        raise PackageError("Pass --app-id (or set MICROSOFT_APP_ID): the Azure Bot's Microsoft App ID.")
    path = build(app_id, output)
    click.echo(f"Wrote {path}: upload it in Teams (Apps > Manage your apps > Upload an app) or the Teams admin centre.")
