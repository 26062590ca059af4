"""Read policy files into `Document`s. Plain text and Markdown here; other formats register loaders."""

from __future__ import annotations

from index.errors import PolicyBotError

from collections.abc import Callable
from pathlib import Path

from index.model import Document


class DocumentError(PolicyBotError):
    """A policy file cannot be read; the message names the file and the reason."""


Loader = Callable[[Path], str]
LOADERS: dict[str, tuple[str, Loader]] = {}


def register(suffix: str, fmt: str, loader: Loader) -> None:
    LOADERS[suffix.lower()] = (fmt, loader)


def _read_text(path: Path) -> str:
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


register(".txt", "txt", _read_text)
register(".md", "md", _read_text)
register(".markdown", "md", _read_text)


def supported_suffixes() -> tuple[str, ...]:
    _register_rich_formats()
    return tuple(sorted(LOADERS))


def load_document(path: Path, school: str, policy: str) -> Document:
    _register_rich_formats()
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    entry = LOADERS.get(path.suffix.lower())
    if entry is None:
        known = ", ".join(sorted(LOADERS))
        raise DocumentError(f"{path}: unknown format {path.suffix or '(no extension)'!r}; use one of {known}")
    fmt, loader = entry
    text = loader(path)
    if not text.strip():
        raise DocumentError(f"{path}: no text could be read from the file")
    return Document(school=school, policy=policy, path=str(path), text=text, format=fmt)


def _register_rich_formats() -> None:
    try:  # Word, PDF and HTML loaders live in their own module
        import index.formats  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "index.formats":
            raise
