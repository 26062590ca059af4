"""The frozen records passed between the stages of the index."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """A policy document read from disk, before cleaning."""

    school: str
    policy: str
    path: str
    text: str
    # Headings found by a structured loader (Word heading styles, HTML <h*>):
    # the loader writes them as Markdown headings in `text`, so one chunker serves all.
    format: str = "txt"
    # What the loader left out as page clutter (a web page's cookie notice, menus, ticker), as (reason, text):
    # shown to the admin by the index report and `policybot show`, never indexed.
    dropped: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One quotable piece of a policy: a clause, a paragraph, or a list with its lead-in."""

    chunk_id: str
    school: str
    policy: str
    section: str  # clause or section number such as "6.2"; "" when the document has none
    heading: tuple[str, ...]  # heading path, outermost first
    text: str  # the exact (cleaned) source text, for quoting
    ordinal: int = 0  # position in the document
    context: str = ""  # the lead-in a numbered clause continues ("...will consider the following action:"); searched, not quoted

    @property
    def heading_path(self) -> str:
        return " > ".join(self.heading)


@dataclass(frozen=True)
class Hit:
    """A chunk found for a question, with the scores that ranked it."""

    chunk: Chunk
    score: float  # ranks the school's chunks
    confidence: float = 0.0  # the same blend with the last layer's word match: judges whether the policy answers the question
    dense: float = 0.0
    lexical: float = 0.0
    passage: int = 0  # which embedded passage matched best: 0 = the whole chunk, i = passages(chunk)[i - 1]
    passage_scores: tuple[float, ...] = ()  # each of passages(chunk)'s similarity to the question, in order
