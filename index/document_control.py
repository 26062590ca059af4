"""Document control: who approved a policy, when it was reviewed and is next due, its version.

Policies carry it in a table or in lines such as "Next review date: January 2026".
It is not policy text, but staff ask what it says ("when is this policy next
reviewed?"), so cleaning lists it under one "Document details" heading at the
end of the policy, its cells joined with " | ", instead of dropping it. Every
other table is stray cells, as PDF and Word extraction leave them.
"""

from __future__ import annotations

import re

HEADING = "# Document details"  # PolicyBot's heading; the policy has none for its control table
MARK = "\ue000"  # marks a control table's row in the cleaned lines until `gather` lists them, in document order
# words that make a table a document-control table, in its header row or its label column
CONTROL = re.compile(
    r"\b(?:approved|approval|ratified|adopted|version|key staff|reviewed|review date|review due|next review"
    r"|last review|date of review|date of last review|last updated|date of issue)\b",
    re.IGNORECASE,
)
_LABEL = (
    r"(?:date\s+(?:of\s+)?)?(?:(?:next|last)\s+)?(?:review|reviewed|approved|approval|agreed|adopted|ratified|updated|issue|issued)"
    r"(?:\s+(?:date|due|on|by|&\s*adapted|and\s+adapted))*"
    r"(?:\s+(?:the\s+)?(?:full\s+)?(?:governing\s+body|governors|trustees|board(?:\s+of\s+trustees)?|headteacher))?"
    r"|to\s+be\s+reviewed|review\s+(?:cycle|frequency)|version(?:\s+number)?|key\s+staff|(?:policy\s+)?(?:author|owner)"
)
# "Next review date: January 2026", "Approved by: Mr J. Smith, Headteacher", "Version: 2.1"
DETAIL_LINE = re.compile(rf"^(?i:{_LABEL})\s*:\s*(?P<value>[^\s:].{{0,60}}?)\.?$")
# "Agreed by the Full Governing Body", "Approved by Governors on 14.03.2024"
DETAIL_STATEMENT = re.compile(r"^(?:Agreed|Approved|Adopted|Ratified) by (?:the )?[A-Z][^;:]{2,60}$")
DATE = re.compile(
    r"\d|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:autumn|spring|summer|term)\b", re.IGNORECASE)
PAGE_NUMBER = re.compile(r"\bpage \d+(?: of \d+)?\b", re.IGNORECASE)


def is_detail_line(line: str) -> bool:
    """A line of its own saying who approved the policy or when it is reviewed, with a date or a name as its value."""
    line = line.strip()
    match = DETAIL_LINE.match(line)
    if match:
        value = match.group("value")
        return bool(DATE.search(value)) or len(value.split()) <= 6
    return bool(DETAIL_STATEMENT.match(line))


def is_control_row(line: str) -> bool:
    """A table row or line of document control (kept even when it repeats on every page: `gather` de-duplicates)."""
    return (_is_row(line, strict=True) and bool(CONTROL.search(line))) or is_detail_line(line)


def mark_tables(lines: list[str]) -> list[str]:
    """Mark a document-control table's rows with MARK; drop other tables, except rows with a long cell (prose)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _is_row(lines[i], strict=True) or _is_clause(lines[i]):
            out.append(lines[i].replace("\t", " "))
            i += 1
            continue
        rows, i = _table(lines, i)
        if _is_control(rows):
            out.extend(MARK + _row(row) for row in rows if not PAGE_NUMBER.search(" ".join(row)))
        else:
            out.extend(" ".join(row) for row in rows if any(len(cell) >= 100 for cell in row))
    return out


def gather(lines: list[str]) -> list[str]:
    """The lines without their document control, then a "Document details" list of it, in document order."""
    control = [line.startswith(MARK) or is_detail_line(line) for line in lines]
    details = [line.lstrip(MARK) for line, is_control in zip(lines, control) if is_control]
    if not details:
        return lines
    body = [line for line, is_control in zip(lines, control) if not is_control]
    # last, so the heading it adds nests nothing of the policy's own
    return body + ["", HEADING, ""] + [f"- {row}" for row in dict.fromkeys(details)]


def _is_row(line: str, strict: bool = False) -> bool:
    """A table row: a tab between cells ("Key staff:<TAB>R Jones"), or, not strict, before an empty last cell."""
    return "\t" in (line.strip(" \t") if strict else line.lstrip(" \t"))


def _is_clause(line: str) -> bool:
    """"3.1<TAB>Staff must report concerns." is a numbered clause typed with a tab, not a table row."""
    cells = _cells(line)
    return (len(cells) == 2 and bool(re.fullmatch(r"\d{1,2}(?:\.\d{1,3})*\.?", cells[0]))
            and (len(cells[1]) >= 60 or cells[1].endswith((".", ":", ";"))))


def _table(lines: list[str], start: int) -> tuple[list[list[str]], int]:
    """The rows of the table starting at `start`, and the index after it. A blank line ends the table unless the
    next line is a row of as many cells with a date or number in it (PDF leaves a gap after a tall row); in a
    control table a numbered row ("1.1<TAB>Updated.") is a row."""
    rows, i = [_cells(lines[start])], start + 1
    while i < len(lines):
        j = i
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines) or not _is_row(lines[j], strict=j > i):
            break
        if j > i and (len(_cells(lines[j])) != len(rows[-1]) or not DATE.search(lines[j])):
            break  # a new table, unless a row of dates or numbers goes on after a tall row's gap
        if _is_clause(lines[j]) and not _is_control(rows):
            break
        rows.append(_cells(lines[j]))
        i = j + 1
    return rows, i


def _is_control(rows: list[list[str]]) -> bool:
    """Document control names itself in the header row ("Version | Date") or the label column ("Next review due:")."""
    return bool(CONTROL.search(" ".join(rows[0])) or any(CONTROL.search(row[0]) for row in rows if row))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("\t") if cell.strip()]


def _row(cells: list[str]) -> str:
    """A table row's cells on one line: a label cell ("Key staff:") runs into its value, other cells are kept apart."""
    row = cells[0]
    for cell in cells[1:]:
        row += (" " if row.endswith(":") else " | ") + cell
    return row
