"""Remove what PDF and Word extraction leaves behind, keeping the policy's words.

The output is plain text with one paragraph or list item per line, blank lines
between blocks, `#` headings where the source marked them, and `- ` as the only
list marker. Nothing is reworded: cleaning drops noise, re-joins lines, and
moves the document-control entries (approval, review dates, versions) word for
word into one "Document details" list at the end.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

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
# document control: who approved the policy, when it was reviewed and is next due, its version
CONTROL = (r"\b(?:approved|approval|ratified|adopted|version|key staff|reviewed|review date|review due|next review"
           r"|last review|date of review|date of last review)\b")
CONTROL_TABLE = re.compile(CONTROL, re.IGNORECASE)
# ...or as a line of its own: "Next review date: January 2026", "Approved by: Mr J. Smith, Headteacher"
DETAIL_LINE = re.compile(rf"^(?=[^:]{{0,50}}(?i:{CONTROL}))[A-Z][^:;.]{{1,50}}:\s*[^\s:].{{0,60}}(?<![.;:])$")
DETAILS_HEADING = "# Document details"
CONTROL_ROW = "\ue000"  # marks a control table's row until the details are gathered, in document order
MIN_REPEATS = 3


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u00a0", " ").replace("\u200b", "").replace("\f", "\n\n")
    return text


def clean(text: str) -> str:
    lines = [line.rstrip(" ") for line in normalise(text).split("\n")]  # a trailing tab is an empty table cell
    lines = [ITALIC.sub(r"\1", MARKUP.sub("", line)) for line in lines]
    lines = _drop_repeated_lines(lines)
    lines = _drop_tables_of_contents(lines)
    lines = _tables(lines)
    lines = [_normalise_list_marker(line.rstrip()) for line in lines]
    lines = [line for line in lines if not _is_debris(line)]
    lines = _rejoin_broken_paragraphs(lines)
    details = [line.lstrip(CONTROL_ROW) for line in lines if line.startswith(CONTROL_ROW) or DETAIL_LINE.match(line)]
    if details:  # last, so the heading it adds nests nothing of the policy's own
        lines = [line for line in lines if not (line.startswith(CONTROL_ROW) or DETAIL_LINE.match(line))]
        lines += ["", DETAILS_HEADING, ""] + [f"- {row}" for row in dict.fromkeys(details)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _key(line: str) -> str:
    return re.sub(r"\W+", " ", line).strip().lower()


def _drop_repeated_lines(lines: list[str]) -> list[str]:
    """Page headers, footers and slogans repeat on every page; policy text does not."""
    counts = Counter(_key(line) for line in lines if line.strip() and len(line.strip()) <= 100)
    repeated = {key for key, n in counts.items() if n >= MIN_REPEATS and key and not LIST_MARKER.match(key)}
    return [line for line in lines if _key(line) not in repeated or not line.strip()]


def _drop_tables_of_contents(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        if TOC_HEADER.match(lines[i]):
            end = _toc_end(lines, i + 1)
            if end is not None:
                i = end
                continue
        # A run of three or more "title<TAB>page" lines is a contents list even without a header.
        run = i
        while run < len(lines) and TOC_PAGED.match(lines[run]):
            run += 1
        if run - i >= 3:
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
    return bool(BARE_MARKER.match(stripped) or URL_ONLY.match(stripped) or len(stripped) == 1)


def _tables(lines: list[str]) -> list[str]:
    """Tab-separated rows are table cells, not clauses. A document-control table (approval, review dates,
    versions) still says what staff ask ("when is this policy reviewed?"): its rows stay, word for word and
    marked with CONTROL_ROW, to be listed as document details. Other tables are dropped as stray cells, but
    for rows with a long cell, which are prose."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _is_row(lines[i], strict=True) or _is_clause(lines[i]):
            out.append(lines[i].replace("\t", " "))
            i += 1
            continue
        run, i = _table_run(lines, i)
        rows = [[cell.strip() for cell in line.split("\t") if cell.strip()] for line in run]
        if CONTROL_TABLE.search(" ".join(" ".join(row) for row in rows)):
            out.extend(CONTROL_ROW + _row(row) for row in rows)
        else:
            out.extend(" ".join(row) for row in rows if any(len(cell) >= 100 for cell in row))
    return out


def _is_row(line: str, strict: bool = False) -> bool:
    """A table row: a tab between cells ("Key staff:<TAB>R Jones"), or, not strict, before an empty last cell."""
    return "\t" in (line.strip(" \t") if strict else line.lstrip(" \t"))


def _is_clause(line: str) -> bool:
    """"3.1<TAB>Staff must report..." is a numbered clause typed with a tab, not a table row."""
    cells = [cell for cell in line.split("\t") if cell.strip()]
    return (len(cells) == 2 and bool(re.fullmatch(r"\s*\d{1,2}(?:\.\d{1,3})*\.?\s*", cells[0]))
            and (len(cells[1]) >= 60 or cells[1].rstrip().endswith((".", ":", ";"))))


def _table_run(lines: list[str], start: int) -> tuple[list[str], int]:
    """The rows of the table that starts at `start` (blank lines between rows do not end it), and where it ends."""
    run, i = [lines[start]], start + 1
    while i < len(lines):
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and _is_row(lines[j]) and not _is_clause(lines[j]):
            run.append(lines[j])
            i = j + 1
        else:
            break
    return run, i


def _row(cells: list[str]) -> str:
    """A table row's cells on one line: a label cell ("Key staff:") runs into its value, other cells are kept apart."""
    row = cells[0]
    for cell in cells[1:]:
        row += (" " if row.endswith(":") else " | ") + cell
    return row


def _rejoin_broken_paragraphs(lines: list[str]) -> list[str]:
    """A page break splits a sentence: 'will be' / '' / 'expected to co-operate'."""
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped and stripped[0].islower() and not stripped.startswith("- "):
            prev = _last_text_index(out)
            if prev is not None and not TERMINAL.search(out[prev]) and not out[prev].lstrip().startswith("#"):
                del out[prev + 1 :]
                out[prev] = f"{out[prev].rstrip()} {stripped}"
                continue
        out.append(line)
    return out


def _last_text_index(lines: list[str]) -> int | None:
    for i in range(len(lines) - 1, max(-1, len(lines) - 4), -1):
        if lines[i].strip():
            return i
    return None
