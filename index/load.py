"""Read policy files into `Document`s: plain text and Markdown here, Word, PDF and HTML in `index.formats`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from index.errors import DocumentError
from index.formats import FORMATS
from index.model import Document

__all__ = ["DocumentError", "load_document", "supported_suffixes"]

# A loader reads a file into Markdown-like text and appends what it left out as clutter to `dropped`.
Loader = Callable[[Path, list], str]


def _read_text(path: Path, dropped: list | None = None) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise DocumentError(f"{path}: the file is empty")
    if b"\x00" in data[:4096]:
        raise DocumentError(f"{path}: the file is binary, not text; save it as .txt, .md, .docx, .pdf or .html")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{path}: the text is not UTF-8 or Windows-1252")


LOADERS: dict[str, tuple[str, Loader]] = {".txt": ("txt", _read_text), ".md": ("md", _read_text),
                                          ".markdown": ("md", _read_text), **FORMATS}


def supported_suffixes() -> tuple[str, ...]:
    return tuple(sorted(LOADERS))


def load_document(path: Path, school: str, policy: str) -> Document:
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    entry = LOADERS.get(path.suffix.lower())
    if entry is None:
        known = ", ".join(sorted(LOADERS))
        raise DocumentError(f"{path}: unknown format {path.suffix or '(no extension)'!r}; use one of {known}")
    fmt, loader = entry
    dropped: list[tuple[str, str]] = []
    text = loader(path, dropped)
    if not text.strip():
        raise DocumentError(f"{path}: no text could be read from the file")
    return Document(school=school, policy=policy, path=str(path), text=text, format=fmt, dropped=tuple(dropped))
