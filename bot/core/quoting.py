"""What to show of a clause: the whole of it when it is short; otherwise the sentences and list items that carry
the rule the question is about, in the document's order, with the list's lead-in and "…" where text is left out.

Each sentence or item is scored by how near it is to the question (its own
similarity, from the search) and how many of the question's words (or their
synonyms) it holds. The best always stays, and the next best while the quote is
short enough; a list item is never shown without the line that introduces it,
and a sentence that states the rule ("must", "should not", "is not permitted")
next to the best one is kept with it.
"""

from __future__ import annotations

import re

from index.chunk import structured_passages
from index.lexical import tokens
from index.model import Hit

WHOLE_CHARS = 900  # a clause this short is quoted whole
BUDGET_CHARS = 650  # a trimmed quote holds about this much
RULE = re.compile(r"\b(must|should|shall|will not|may not|cannot|can't|not permitted|not allowed|prohibited|required|expected|"
                  r"are to|is to|never|always|responsible for)\b", re.IGNORECASE)


def quote(hit: Hit, question: str) -> str:
    text = hit.chunk.text
    if len(text) <= WHOLE_CHARS:
        return text
    parts = structured_passages(hit.chunk)
    if not parts:
        return text[:WHOLE_CHARS].rsplit(" ", 1)[0] + " …"
    asked = set(tokens(question))
    similarity = list(hit.passage_scores) + [0.0] * max(0, len(parts) - len(hit.passage_scores))
    scores = [similarity[i] + 0.5 * (len(asked & set(tokens(p.body))) / max(len(asked), 1)) for i, p in enumerate(parts)]
    order = sorted(range(len(parts)), key=lambda i: -scores[i])
    best = order[0]
    keep = {best}
    # the rule next to the best sentence, when the best one only describes ("This applies to... ." + "Staff must...")
    if not RULE.search(parts[best].body):
        for neighbour in (best + 1, best - 1):
            if 0 <= neighbour < len(parts) and parts[neighbour].intro == parts[best].intro and RULE.search(parts[neighbour].body):
                keep.add(neighbour)
                break
    size = sum(len(parts[i].body) for i in keep)
    for i in order[1:]:
        if size + len(parts[i].body) > BUDGET_CHARS:
            continue
        if scores[i] < 0.8 * scores[best]:
            break
        keep.add(i)
        size += len(parts[i].body)
    return _render(parts, sorted(keep))


def _render(parts, kept: list[int]) -> str:
    """The kept passages in document order: each list's lead-in once, items as "- " lines, "…" for gaps."""
    lines: list[str] = []
    intro_shown = None
    previous = None
    for i in kept:
        part = parts[i]
        if previous is not None and i != previous + 1:
            lines.append("…")
        if part.intro:
            if part.intro != intro_shown:
                lines.append(part.intro)
                intro_shown = part.intro
            lines.append(f"- {part.body}")
        else:
            intro_shown = None
            if lines and previous == i - 1 and parts[previous].line == part.line and not parts[previous].intro:
                lines[-1] = f"{lines[-1]} {part.body}"  # the next sentence of the same paragraph
            else:
                lines.append(part.body)
        previous = i
    if kept[0] != 0:
        lines.insert(0, "…")
    if kept[-1] != len(parts) - 1:
        lines.append("…")
    return "\n".join(lines)
