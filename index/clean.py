"""Remove what PDF and Word extraction leaves behind, keeping the policy's words.

The output is plain text with one paragraph or list item per line, blank lines
between blocks, `#` headings where the source marked them, and `- ` as the only
list marker. Nothing is reworded: cleaning drops noise, re-joins lines, and
moves the document control (approval, review dates, versions) to one
"Document details" list at the end (index/document_control.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from index import document_control

LIST_MARKER = re.compile(r"^\s*(?:(?:[-–•●▪◦·*➤➢►▶o»>]|&gt;)\s+)+(?=\S)")
BARE_MARKER = re.compile(r"^\s*(?:[-–•●▪◦·*➤➢►▶»>]\s*)+$")
TOC_HEADER = re.compile(r"^\s*(?:table\s+of\s+)?contents\s*:?\s*$", re.IGNORECASE)
# "3. Personal use of social media by staff<TAB>4" - a page number (or an OCR'd one) after a tab.
TOC_ENTRY = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?\s+)?[^\t]{2,90}?(?:\t+\s*(?:\d{1,3}|[A-Za-z]))?\s*$")
TOC_PAGED = re.compile(r"^[^\t]{2,90}\t+\s*(?:\d{1,3}|[A-Z])\s*$")
TOC_PAGE = re.compile(r"\t+\s*(?:\d{1,3}|[A-Za-z])?\s*$")
URL_ONLY = re.compile(r"^\s*(?:https?://|www\.)\S+\s*$", re.IGNORECASE)
MARKUP = re.compile(r"\*\*|__|</?u>|</?b>|</?i>", re.IGNORECASE)
ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
TERMINAL = re.compile(r"[.;:!?)\"'”’]$")
# "Page 3 of 12", "3 / 12", "- 3 -": a page number left in the text by a Word or web export
PAGE_NUMBER = re.compile(r"^\s*(?:[-–]\s*)?(?:page\s+)?\d{1,3}(?:\s*(?:of|/)\s*\d{1,3})?(?:\s*[-–])?\s*$", re.IGNORECASE)
MIN_REPEATS = 3


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u200b", "").replace("\f", "\n\n")
    return re.sub("[\ue000-\uf8ff]", "", text)  # private-use symbols (some fonts' bullets) are no text


def clean(text: str, dropped: list | None = None) -> str:
    """The cleaned text; what was dropped as noise is appended to `dropped` as (reason, line), once per line."""
    noise = _Noise(dropped)
    lines = [line.rstrip(" ") for line in normalise(text).split("\n")]  # a trailing tab is an empty table cell
    lines = [ITALIC.sub(r"\1", MARKUP.sub("", line)) for line in lines]
    lines = _drop_repeated_lines(lines, noise)
    lines = _drop_tables_of_contents(lines, noise)
    lines = document_control.mark_tables(lines)
    lines = [_normalise_list_marker(line.rstrip()) for line in lines]
    lines = [line for line in lines if not (_is_debris(line) and noise.drop("stray marker, link or page number", line))]
    lines = _rejoin_broken_paragraphs(lines)
    lines = document_control.gather(lines)
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


class _Noise:
    """Collects what cleaning drops, for the admin's index report; `drop` always returns True."""

    def __init__(self, out: list | None):
        self.out, self.seen = out, set()

    def drop(self, reason: str, line: str) -> bool:
        if self.out is not None and line.strip() and (reason, _key(line)) not in self.seen:
            self.seen.add((reason, _key(line)))
            self.out.append((reason, line.strip()))
        return True


def _key(line: str) -> str:
    return re.sub(r"\W+", " ", line).strip().lower()


def _drop_repeated_lines(lines: list[str], noise: _Noise) -> list[str]:
    """Page headers, footers and slogans repeat on every page; policy text does not."""
    counts = Counter(_key(line) for line in lines if line.strip() and len(line.strip()) <= 100)
    repeated = {key for key, n in counts.items() if n >= MIN_REPEATS and key and not LIST_MARKER.match(key)}
    # a review date in every page's footer is document control, listed once under "Document details"
    return [line for line in lines if _key(line) not in repeated or not line.strip() or document_control.is_control_row(line)
            or not noise.drop("repeated on every page", line)]


def _drop_tables_of_contents(lines: list[str], noise: _Noise) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        if TOC_HEADER.match(lines[i]):
            end = _toc_end(lines, i + 1)
            if end is not None:
                for line in lines[i:end]:
                    noise.drop("table of contents", line)
                i = end
                continue
        # A run of three or more "title<TAB>page" lines is a contents list even without a header.
        run = i
        while run < len(lines) and TOC_PAGED.match(lines[run]):
            run += 1
        if run - i >= 3:
            for line in lines[i:run]:
                noise.drop("table of contents", line)
            i = run
            continue
        out.append(lines[i])
        i += 1
    return out


def _toc_end(lines: list[str], start: int) -> int | None:
    """Index of the first body line after a contents list starting at `start`, or None."""
    entries: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        title = _key(TOC_PAGE.sub("", line))
        if entries and title == entries[0]:
            return i  # the body starts by repeating the first entry
        if not TOC_ENTRY.match(line) or re.search(r"[.;!?]$", TOC_PAGE.sub("", line).strip()):
            break
        entries.append(title)
        i += 1
    return i if len(entries) >= 2 else None


def _normalise_list_marker(line: str) -> str:
    if line.lstrip().startswith("#"):
        return line
    match = LIST_MARKER.match(line)
    if match:
        indent = "  " if match.group(0)[:1] in (" ", "\t") and len(match.group(0)) - len(match.group(0).lstrip()) >= 2 else ""
        return indent + "- " + line[match.end():].strip()
    return line.strip() if line.strip() else ""


def _is_debris(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    return bool(BARE_MARKER.match(stripped) or URL_ONLY.match(stripped) or len(stripped) == 1 or PAGE_NUMBER.match(stripped))


def _rejoin_broken_paragraphs(lines: list[str]) -> list[str]:
    """A page break splits a sentence: 'will be' / '' / 'expected to co-operate'. A control table's row between
    the halves (a footer) waits until the sentence is whole."""
    out: list[str] = []
    held: list[str] = []
    for line in lines:
        if line.startswith(document_control.MARK):
            held.append(line)
            continue
        stripped = line.strip()
        if stripped and stripped[0].islower() and not stripped.startswith("- "):
            prev = _last_text_index(out)
            if prev is not None and not TERMINAL.search(out[prev]) and not out[prev].lstrip().startswith("#"):
                del out[prev + 1 :]
                out[prev] = f"{out[prev].rstrip()} {stripped}"
                out.extend(held)
                held.clear()
                continue
        if stripped:
            out.extend(held)
            held.clear()
        out.append(line)
    return out + held


def _last_text_index(lines: list[str]) -> int | None:
    for i in range(len(lines) - 1, max(-1, len(lines) - 4), -1):
        if lines[i].strip():
            return i
    return None
