"""Split cleaned policy text into quotable chunks that follow the document's structure.

A chunk is a numbered clause (with the list it introduces), a paragraph, or a
list kept with the sentence that introduces it; a paragraph that points back
stays with the passage before it, and a short sentence that announces a topic
with the paragraph that sets it out. Every chunk carries its school,
policy, section number and heading path. `passages` splits a chunk further into
the sentences and list items that the embedder sees one at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.lexical import tokens
from index.model import Chunk, Document

MD_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*#*$")
CLAUSE = re.compile(r"^(\d{1,2}(?:\.\d{1,3})+)\.?\s+([^\s|].*)$")  # "1.0 | May 2023" is a table row
TOP_NUMBER = re.compile(r"^(\d{1,2})[.)]?\s+(\S.*)$")
BULLET = re.compile(r"^\s*- (.*)$")
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]?\s+(?=[A-Z0-9\"'“‘(])")
# "...will consider taking the following action:" introduces the numbered clauses after it.
LEAD_IN = re.compile(r"(?::|\bfollowing\b[^.]*\.)\s*$", re.IGNORECASE)
# A paragraph that opens by pointing back ("These accounts are managed by...", "It applies regardless of...")
# continues the passage before it. "This policy", "These guidelines", "This school", "Those who..." and an
# impersonal "It is / It's / It may" point nowhere.
BACK_REFERENCE = re.compile(
    r"^(?:(?:These|Those|Such|They|This)\b"
    r"(?!(?:\s+[\w-]+){0,2}?\s+(?i:policy|policies|guidelines|procedures?|document|guidance|section|code|plan|school|trust|academy)\b)"
    r"(?!\s+(?i:who|that|which)\b)"  # "Those who breach it..."
    r"|It\b(?!['’]s\b)(?!\s+(?i:is|was|has|should|may|might|can|could|would|will|must)\b))"
)
# "The use of social networking sites introduces a range of potential safeguarding risks to children." then
# "Potential risks can include: ...": a short one-sentence paragraph announces what the next one sets out.
MAX_TOPIC_LEAD_CHARS = 160
MAX_HEADING_CHARS = 90
MAX_HEADING_WORDS = 14
MAX_CHUNK_CHARS = 1500
PLAIN_HEADING_LEVEL = 9
# "Produced by: School's HR", "Tel: 0151 233 3901": a label and its value, not policy text (cleaning has
# already listed the document-control ones, "Next review date: January 2026", under "Document details").
LABEL_VALUE = re.compile(r"^[A-Z][\w &/'-]{1,30}:\s+\S.{0,80}$")


@dataclass
class _Item:
    kind: str  # heading | clause | para | bullet
    text: str
    number: str = ""
    level: int = 0


def chunk_document(document: Document, cleaned: str) -> list[Chunk]:
    items = _items(cleaned.split("\n"))
    builder = _ChunkBuilder(document)
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        builder.add(item, following)
    return builder.finish()


@dataclass(frozen=True)
class Passage:
    """One sentence or list item of a chunk, as the embedder sees it and as a quote shows it."""

    line: int  # which line of the chunk's text it is on
    body: str  # the sentence or item
    intro: str = ""  # the line that introduces a list item ("Employees must not:"), embedded with it

    @property
    def text(self) -> str:
        return f"{self.intro} {self.body}".strip() if self.intro else self.body


def structured_passages(chunk: Chunk) -> list[Passage]:
    """The sentences and list items of a chunk, each list item with the line that introduces it."""
    lines = chunk.text.split("\n")
    out: list[Passage] = []
    intro = ""
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if line.startswith("- "):
            body, prefix = line[2:], intro
        else:
            body, prefix = line, ""
            intro = line if line.rstrip().endswith(":") else ""
            following = next((n for n in lines[index + 1:] if n.strip()), "")
            if intro and following.startswith("- "):
                continue  # a lead-in is embedded with each of its items
        for sentence in SENTENCE_END.split(body):
            sentence = sentence.strip()
            if len(sentence) >= 12:
                out.append(Passage(index, sentence, prefix))
    return out


def passages(chunk: Chunk) -> list[str]:
    """The sentences and list items of a chunk, each list item with the line that introduces it."""
    return [passage.text for passage in structured_passages(chunk)]


def _items(lines: list[str]) -> list[_Item]:
    items: list[_Item] = []
    previous_blank = True
    for raw in lines:
        line = raw.strip()
        if not line:
            previous_blank = True
            continue
        bullet = BULLET.match(raw)
        if bullet:
            text = bullet.group(1).strip()
            clause = CLAUSE.match(text)
            if clause:
                items.append(_Item("clause", clause.group(2), clause.group(1)))
            else:
                items.append(_Item("bullet", text))
        elif not previous_blank and items and items[-1].kind == "bullet":
            items[-1].text = f"{items[-1].text} {line}"  # a wrapped list item
        else:
            items.append(_classify(line))
        previous_blank = False
    return _resolve_list_intros(items)


def _classify(line: str) -> _Item:
    heading = MD_HEADING.match(line)
    if heading:
        return _Item("heading", heading.group(2).strip(), level=len(heading.group(1)))
    clause = CLAUSE.match(line)
    if clause:
        number, rest = clause.groups()
        if _looks_like_heading(rest):
            return _Item("heading", rest, number, level=number.count(".") + 1)
        return _Item("clause", rest, number)
    top = TOP_NUMBER.match(line)
    if top and _looks_like_heading(top.group(2)) and top.group(2)[:1].isupper():
        return _Item("heading", top.group(2), top.group(1), level=1)
    if LABEL_VALUE.match(line):
        return _Item("label", line)
    if _looks_like_heading(line) and line[:1].isupper():
        return _Item("heading", line, level=PLAIN_HEADING_LEVEL)
    return _Item("para", line)


def _looks_like_heading(text: str) -> bool:
    text = text.strip()
    return (
        len(text) <= MAX_HEADING_CHARS
        and len(text.split()) <= MAX_HEADING_WORDS
        and not re.search(r"[.;,!]$", text)
        and not text.startswith("(")
    )


def _resolve_list_intros(items: list[_Item]) -> list[_Item]:
    """Correct what looked like headings from their neighbours.

    - a line ending in ':' (or in a lower-case word) followed by a list is the list's lead-in;
    - three or more short lines in a row with nothing under them are a list without markers;
    - a short line between two consecutive clauses (1.1, header, 1.2) is a running page header.
    """
    items = [item for item in items if item.kind != "label"]
    for index, item in enumerate(items[:-1]):
        following = items[index + 1]
        if item.kind == "heading" and following.kind == "bullet":
            last_word = item.text.split()[-1]
            sentence_like = item.level == PLAIN_HEADING_LEVEL and (last_word.islower() or len(item.text.split()) >= 7)
            if item.text.endswith(":") or sentence_like:
                item.kind = "clause" if item.number else "para"
    _plain_runs_to_bullets(items)
    kept = []
    for index, item in enumerate(items):
        before = items[index - 1] if index else None
        after = items[index + 1] if index + 1 < len(items) else None
        if (
            item.kind == "heading"
            and item.level == PLAIN_HEADING_LEVEL
            and not item.text.endswith((":", "?"))
            and before is not None
            and after is not None
            and before.kind == after.kind == "clause"
            and _consecutive(before.number, after.number)
        ):
            continue
        kept.append(item)
    return kept


def _plain_runs_to_bullets(items: list[_Item]) -> None:
    start = 0
    while start < len(items):
        end = start
        while end < len(items) and items[end].kind == "heading" and items[end].level == PLAIN_HEADING_LEVEL:
            end += 1
        lead_in = items[start - 1].text.endswith(":") if start else False
        if end - start >= 3 and lead_in:
            for item in items[start:end]:
                item.kind = "bullet"
        start = max(end, start + 1)


def _consecutive(first: str, second: str) -> bool:
    a, b = first.split("."), second.split(".")
    return len(a) == len(b) and a[:-1] == b[:-1] and a[-1].isdigit() and b[-1].isdigit() and int(b[-1]) == int(a[-1]) + 1


class _ChunkBuilder:
    def __init__(self, document: Document):
        self.document = document
        self.headings: list[_Item] = []
        self.chunks: list[Chunk] = []
        self.lines: list[str] = []
        self.number = ""
        self.accepts_bullets = False
        self.lead_in = ""  # the sentence that introduces the run of clauses being read
        self.context = ""

    def add(self, item: _Item, following: _Item | None) -> None:
        if item.kind != "clause":
            self.lead_in = ""
        if item.kind == "heading":
            self._flush()
            while self.headings and self.headings[-1].level >= item.level:
                self.headings.pop()
            self.headings.append(item)
        elif item.kind == "bullet":
            if not self.accepts_bullets or sum(map(len, self.lines)) > MAX_CHUNK_CHARS:
                intro = [line for line in self.lines if not line.startswith("- ")][-1:]
                intro = intro if intro and intro[0].endswith(":") else []
                number = self.number
                self._flush()
                self.lines, self.number = list(intro), number
            self.lines.append(f"- {item.text}")
            self.accepts_bullets = True
        elif item.kind == "para" and self._continues(item):
            self.lines.append(item.text)
            self._after_paragraph(item, following)
        else:  # clause or paragraph: starts a chunk of its own
            self._flush()
            if item.number:
                self._close_headings_outside(item.number)
            self.lines = [item.text]
            self.number = item.number
            self.context = self.lead_in if item.kind == "clause" else ""
            self._after_paragraph(item, following)

    def _continues(self, item: _Item) -> bool:
        """Whether the paragraph `item` belongs with the chunk being built, found and quoted together:
        it points back ("These accounts are managed by the Leadership Group" needs the list of accounts before it),
        or the chunk so far is one short unnumbered sentence that announces what `item` opens with (alone, "...a
        range of potential safeguarding risks to children." outranks "Potential risks can include: ...")."""
        if not self.lines or sum(map(len, self.lines)) + len(item.text) > MAX_CHUNK_CHARS:
            return False
        if BACK_REFERENCE.match(item.text):
            return True
        if self.number or len(self.lines) != 1:
            return False
        lead = self.lines[0]
        one_short_sentence = len(lead) < MAX_TOPIC_LEAD_CHARS and len(SENTENCE_END.split(lead)) == 1
        if lead.startswith("- ") or lead.rstrip().endswith(":") or not one_short_sentence:
            return False
        opening = tokens(item.text)[:1]
        return bool(opening) and opening[0] in set(tokens(lead))

    def _after_paragraph(self, item: _Item, following: _Item | None) -> None:
        if item.kind == "para" and following is not None and following.kind == "clause" and LEAD_IN.search(item.text):
            self.lead_in = SENTENCE_END.split(item.text)[-1]
        self.accepts_bullets = item.text.endswith(":") or (
            following is not None and following.kind == "bullet" and len(item.text) < 300
        )

    def _close_headings_outside(self, number: str) -> None:
        """Clause 2.4 ends heading 2.3 (and any unnumbered heading under it)."""
        cut = None
        for index, heading in enumerate(self.headings):
            if heading.number and not (number + ".").startswith(heading.number + "."):
                cut = index
                break
        if cut is not None:
            self.headings = self.headings[:cut]

    def _flush(self) -> None:
        if self.lines:
            text = "\n".join(self.lines)
            section = self.number or next((h.number for h in reversed(self.headings) if h.number), "")
            heading = tuple(h.text.rstrip(":") for h in self.headings)
            ordinal = len(self.chunks)
            self.chunks.append(
                Chunk(
                    chunk_id=f"{self.document.school}/{self.document.policy}#{ordinal}",
                    school=self.document.school,
                    policy=self.document.policy,
                    section=section,
                    heading=heading,
                    text=text,
                    ordinal=ordinal,
                    context=self.context,
                )
            )
        self.lines, self.number, self.accepts_bullets, self.context = [], "", False, ""

    def finish(self) -> list[Chunk]:
        self._flush()
        return self.chunks
