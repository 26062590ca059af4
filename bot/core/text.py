"""Text from outside made safe to process: no lone surrogates, no undecodable bytes, no control characters."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_CHARS = 100_000  # beyond this nothing is read: no staff message is this long


def safe_text(value) -> str:
    """Any value as clean text: bytes decoded as UTF-8 with replacement, lone surrogates (argv's undecodable bytes,
    JSON's "\\ud800") replaced, control characters dropped, normalised (NFC), and cut at MAX_CHARS."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value[: MAX_CHARS * 4]).decode("utf-8", "replace")
    else:
        text = str(value)[:MAX_CHARS]
        if any("\ud800" <= c <= "\udfff" for c in text):
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return unicodedata.normalize("NFC", _CONTROL.sub(" ", text))[:MAX_CHARS]
