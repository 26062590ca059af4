"""Loaders for Word, PDF and HTML policies; `index.load` reads every format through `FORMATS`.

Each loader returns Markdown-like text so one chunker serves every format:
headings become `#` lines, list items `- ` lines, paragraphs are separated by
blank lines and table rows become tab-separated lines (cleaning lists a
document-control table's rows under "Document details" and drops other
tables). Numbered headings ("6 Monitoring", "6.2 Use of devices")
are written without `#` so the chunker reads their number as the section.
A short bold line with no closing punctuation (a sub-heading typed in bold
rather than styled), or a bold lead-in before a new sentence, becomes a heading
too. A web page is first cut to its main content by readability-lxml (Mozilla
Readability's method: text and link density), so cookie notices, menus, tickers,
sidebars and footers stay out; what was cut is appended to the loader's
`dropped` list for the index report.

`python-docx`, `pypdf` and `bs4` are imported only when such a file is loaded.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from index.errors import DocumentError

NUMBERED = re.compile(r"^\d{1,2}(?:\.\d{1,3})*[.)]?\s+\S")
LIST_START = re.compile(r"^(?:[-–•●▪◦·*]|\d{1,2}(?:\.\d{1,3})+\.?|\d{1,2}[.)])\s+")


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DocumentError(f"{path}: the file is empty (0 bytes); replace it with the real document")


MAX_BOLD_HEADING_WORDS = 14
MAX_BOLD_HEADING_CHARS = 90


def bold_heading(text: str) -> bool:
    """Whether bold text on its own reads as a sub-heading: short, and not a sentence or a lead-in."""
    from index import document_control

    text = " ".join(text.split())
    if document_control.is_detail_line(text):  # "Agreed by the Full Governing Body" is document control
        return False
    return (0 < len(text) <= MAX_BOLD_HEADING_CHARS and len(text.split()) <= MAX_BOLD_HEADING_WORDS
            and not re.search(r"[.;:,!?…]$", text) and any(ch.isalpha() for ch in text))


def starts_sentence(text: str) -> bool:
    text = text.lstrip(" \t-–—:")
    return bool(text) and (text[0].isupper() or text[0].isdigit())


def _heading(level: int, text: str) -> str:
    if NUMBERED.match(text):
        return text  # the chunker takes the section number from a numbered heading
    return "#" * max(1, min(level, 6)) + " " + text


# --- Word -----------------------------------------------------------------------------------

def load_docx(path: Path, dropped: list | None = None) -> str:
    _check_not_empty(path)
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError
    except ModuleNotFoundError:  # pragma: no cover - an install without the extra
        raise DocumentError(f"{path}: reading Word files needs python-docx; run `pip install python-docx`") from None
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise DocumentError(f"{path}: the file is damaged or not a Word .docx file ({type(exc).__name__}); "
                            "open it in Word and save it again as .docx") from None
    except Exception as exc:  # zipfile.BadZipFile, lxml errors: a damaged file
        raise DocumentError(f"{path}: the file is damaged or not a Word .docx file ({type(exc).__name__}); "
                            "open it in Word and save it again as .docx") from None
    numbering = _Numbering(document)
    blocks: list[str] = []
    last_level = 1
    for block in _body_blocks(document):
        if isinstance(block, list):  # a table: one tab-separated line per row
            blocks.append("\n".join("\t".join(cell for cell in row) for row in block))
            continue
        paragraph = block
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = _heading_level(style)
        if level:
            blocks.append(_heading(level, " ".join(text.split())))
            last_level = level
            continue
        marker = numbering.marker(paragraph)
        if marker is None and style.lower().startswith("list"):
            marker = ""
        if marker is None:
            lead, rest = _bold_lead(paragraph)
            if lead and (not rest or starts_sentence(rest)):
                blocks.append(_heading(min(last_level + 1, 6), lead))  # a sub-heading typed in bold
                if rest:
                    blocks.append(rest)
            else:
                blocks.append(text)
        elif marker and not text.startswith(marker):
            blocks.append(f"- {marker} {text}")  # Word's automatic number ("6.2") becomes part of the text
        else:
            blocks.append(f"- {text}")
    if dropped is not None:
        dropped.extend(("page header or footer", line) for line in _running_lines(document))
    return _join(blocks)


def _running_lines(document) -> list[str]:
    """The text of the document's page headers and footers: Word keeps them apart from the body, so they are never
    indexed; listed so the report says where they went."""
    seen: list[str] = []
    for section in document.sections:
        for part in (section.header, section.first_page_header, section.footer, section.first_page_footer):
            try:  # a part linked to the previous section's reads as that one: `seen` lists each line once
                paragraphs = part.paragraphs
            except (AttributeError, ValueError, KeyError):  # a damaged header part: there is nothing to list
                continue
            for paragraph in paragraphs:
                line = " ".join(paragraph.text.split())
                if line and line not in seen:
                    seen.append(line)
    return seen


def _bold_lead(paragraph) -> tuple[str, str]:
    """The paragraph's bold opening runs when they read as a sub-heading, and the text after them."""
    style_bold = bool(paragraph.style is not None and paragraph.style.font is not None and paragraph.style.font.bold)
    lead: list[str] = []
    runs = list(paragraph.runs)
    for index, run in enumerate(runs):
        bold = run.bold if run.bold is not None else style_bold
        if not run.text.strip():
            lead.append(run.text)
            continue
        if not bold:
            rest = " ".join("".join(r.text for r in runs[index:]).split())
            heading = " ".join("".join(lead).split())
            return (heading, rest) if bold_heading(heading) else ("", "")
        lead.append(run.text)
    heading = " ".join("".join(lead).split())
    return (heading, "") if bold_heading(heading) else ("", "")


def _heading_level(style: str) -> int:
    lowered = style.lower()
    if lowered == "title":
        return 1
    match = re.match(r"heading\s*(\d)", lowered)
    return int(match.group(1)) if match else 0


def _body_blocks(document):
    """Paragraphs and tables in document order (tables as lists of rows of cell text)."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(child, document)
        elif tag == "tbl":
            table = Table(child, document)
            rows = []
            for row in table.rows:
                cells = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if not cells or cells[-1] != value:  # merged cells repeat
                        cells.append(value)
                rows.append(cells)
            yield rows


class _Numbering:
    """Computes Word's automatic list numbers ("3.", "6.2") from numbering.xml; bullets give ""."""

    def __init__(self, document):
        self.formats: dict[tuple[str, int], tuple[str, str, int]] = {}
        self.counters: dict[str, list[int]] = {}
        try:
            part = document.part.numbering_part
        except (NotImplementedError, KeyError, AttributeError):
            return
        root = part.element
        abstract = {}
        for node in root.findall(_w("abstractNum")):
            levels = {}
            for lvl in node.findall(_w("lvl")):
                fmt = _val(lvl.find(_w("numFmt"))) or "decimal"
                text = _val(lvl.find(_w("lvlText"))) or ""
                start = int(_val(lvl.find(_w("start"))) or 1)
                levels[int(lvl.get(_w("ilvl")) or 0)] = (fmt, text, start)
            abstract[node.get(_w("abstractNumId"))] = levels
        for num in root.findall(_w("num")):
            ref = _val(num.find(_w("abstractNumId")))
            for ilvl, spec in abstract.get(ref, {}).items():
                self.formats[(num.get(_w("numId")), ilvl)] = spec

    def marker(self, paragraph) -> str | None:
        numpr = _numpr(paragraph._p)
        style = paragraph.style
        while numpr is None and style is not None:  # "List Number" numbers through its style
            numpr = _numpr(style.element)
            style = style.base_style
        if numpr is None:
            return None
        num_id = _val(numpr.find(_w("numId")))
        ilvl = int(_val(numpr.find(_w("ilvl"))) or 0)
        if not num_id or num_id == "0":
            return None
        fmt, text, start = self.formats.get((num_id, ilvl), ("bullet", "", 1))
        counters = self.counters.setdefault(num_id, [0] * 9)
        counters[ilvl] = counters[ilvl] + 1 if counters[ilvl] else start
        for deeper in range(ilvl + 1, 9):
            counters[deeper] = 0
        if fmt != "decimal":
            return ""
        return re.sub(r"%(\d)", lambda m: str(counters[int(m.group(1)) - 1] or 1), text).rstrip(".")


def _numpr(element):
    ppr = element.find(_w("pPr"))
    return ppr.find(_w("numPr")) if ppr is not None else None


def _w(tag: str) -> str:
    return "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag


def _val(node) -> str | None:
    return None if node is None else node.get(_w("val"))


# --- PDF ------------------------------------------------------------------------------------

def load_pdf(path: Path, dropped: list | None = None) -> str:
    _check_not_empty(path)
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{path}: the PDF is password-protected; save an unprotected copy and put that in policies/")
        pages = [_page_lines(page) for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        if "decrypt" in str(exc).lower() or "encrypt" in str(exc).lower():
            raise DocumentError(f"{path}: the PDF is password-protected; save an unprotected copy and put that in policies/") from None
        raise DocumentError(f"{path}: the PDF is damaged or not a PDF ({type(exc).__name__}); export it again from the original") from None
    if not any(page for page in pages):
        raise DocumentError(f"{path}: the PDF has no text layer (a scanned image?); run OCR on it or export it from the original document")
    pages = _drop_running_lines(pages, dropped)
    sizes = Counter()
    for page in pages:
        for text, _, size in page:
            sizes[round(size, 1)] += len(text)
    body = sizes.most_common(1)[0][0]
    return "\n\n".join(_paragraphs(page, body) for page in pages if page)


def _page_lines(page) -> list[tuple[str, float, float]]:
    """The page's lines, top to bottom: (text, gap above it in font sizes (0 for the first), font size)."""
    pieces: list[tuple[float, float, str, float]] = []

    def visit(text, cm, tm, font_dict, font_size):
        if text and text.strip():
            scale = abs(tm[3]) or 1.0
            y = tm[5] * (cm[3] or 1.0) + cm[5]
            pieces.append((round(y, 1), tm[4] * (cm[0] or 1.0) + cm[4], text, (font_size or 10) * scale))

    page.extract_text(visitor_text=visit)
    rows: dict[float, list[tuple[float, str, float]]] = {}
    for y, x, text, size in pieces:
        key = next((k for k in rows if abs(k - y) < 1.5), y)
        rows.setdefault(key, []).append((x, text, size))
    lines: list[tuple[str, float]] = []
    previous_y = None
    for y in sorted(rows, reverse=True):
        parts = sorted(rows[y])
        text = ""
        end = None
        for x, piece, size in parts:  # a wide jump between pieces on one line is a table column
            if end is not None and x - end > 1.5 * size:
                text = text.rstrip() + "\t"
            text += piece.replace("\n", " ")
            end = x + 0.5 * size * len(piece)
        text = "\t".join(" ".join(cell.split()) for cell in text.split("\t"))
        size = max(s for _, _, s in parts)
        gap = 0.0 if previous_y is None else (previous_y - y) / size
        previous_y = y
        if text:
            lines.append((text, gap, size))
    return lines


def _drop_running_lines(pages: list[list[tuple]], dropped: list | None = None) -> list[list[tuple]]:
    """Remove headers and footers: lines at the top or bottom of (nearly) every page, page numbers ignored."""
    if len(pages) < 2:
        return pages

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", line.lower()).strip()

    edge = Counter()
    for page in pages:
        edge.update({key(line[0]) for line in page[:2] + page[-2:]})
    needed = max(2, int(0.6 * len(pages) + 0.5))
    running = {k for k, n in edge.items() if n >= needed}
    out = []
    reported: set[str] = set()

    def drop(line: str) -> None:
        if dropped is not None and key(line) not in reported:
            reported.add(key(line))
            dropped.append(("page header or footer", line))

    for page in pages:
        kept = list(page)
        while kept and key(kept[0][0]) in running:
            drop(kept.pop(0)[0])
        while kept and key(kept[-1][0]) in running:
            drop(kept.pop()[0])
        if kept:
            kept[0] = (kept[0][0], 0.0, kept[0][2])
        out.append(kept)
    return out


def _paragraphs(lines: list[tuple[str, float, float]], body: float) -> str:
    """Re-join wrapped lines (a line close under the previous one continues it unless it starts
    a list item); lines in a larger font than the body text are headings."""
    out: list[str] = []
    previous_heading = False
    for text, gap, size in lines:
        heading = size >= 1.12 * body
        if out and 0 < gap <= 1.35 and not LIST_START.match(text) and heading == previous_heading:
            out[-1] = f"{out[-1]} {text}"
            continue
        if out and (gap > 2.2 or heading or previous_heading):
            out.append("")
        out.append(_heading(1 if size >= 1.25 * body else 2, text) if heading else text)
        previous_heading = heading
    return "\n".join(out)


# --- HTML -----------------------------------------------------------------------------------

DROP = ("script", "style", "nav", "noscript", "template", "head")
BLOCKS = {"p", "div", "section", "article", "main", "header", "footer", "aside", "form", "figure", "blockquote", "pre", "dd", "dt", "address", "figcaption", "body"}


def load_html(path: Path, dropped: list | None = None) -> str:
    _check_not_empty(path)
    from bs4 import BeautifulSoup

    raw = path.read_bytes()
    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(list(DROP)):
        tag.decompose()
    page: list[str] = []
    _walk(soup.body or soup, page, {"level": 1})
    main = _main_content(raw)
    if main is None:
        return _join(page)
    article = BeautifulSoup(main, "html.parser")
    for tag in article(list(DROP)):
        tag.decompose()
    blocks: list[str] = []
    _walk(article, blocks, {"level": 1})
    kept = {_plain(block) for block in blocks}
    if not kept - {""}:
        return _join(page)  # readability found no article: the page is all policy
    if dropped is not None:
        dropped.extend(("web page clutter", block) for block in page if _plain(block) not in kept and _plain(block))
    return _join(blocks)


def _main_content(raw: bytes) -> str | None:
    """The page's main content as HTML, chosen by readability-lxml; None when it cannot tell."""
    try:
        from readability import Document as Readable

        return Readable(raw).summary(html_partial=True)
    except ModuleNotFoundError as exc:  # an install without it would index the cookie notice and the menus
        raise DocumentError(f"reading web pages needs {exc.name}; run `make install` (or pip install readability-lxml "
                            "lxml-html-clean)") from None
    except Exception:  # readability's own Unparseable, lxml errors: read the whole page
        return None


def _plain(block: str) -> str:
    return " ".join(re.sub(r"^(?:#+|-)\s+", "", block).split()).lower()


def _walk(node, blocks: list[str], state: dict) -> None:
    from bs4 import NavigableString, Tag

    inline: list[str] = []

    def flush():
        text = " ".join("".join(inline).split())
        if text:
            blocks.append(text)
        inline.clear()

    children = [c for c in node.children if not (isinstance(c, NavigableString) and type(c).__name__ in
                                                  ("Comment", "Doctype", "Declaration", "ProcessingInstruction"))]
    for index, child in enumerate(children):
        if isinstance(child, NavigableString):
            inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if re.fullmatch(r"h[1-6]", name):
            flush()
            text = " ".join(child.get_text(" ").split())
            if text:
                blocks.append(_heading(int(name[1]), text))
                state["level"] = int(name[1])
        elif name in ("ul", "ol"):
            flush()
            for item in child.find_all("li", recursive=False):
                nested = [sub.extract() for sub in item.find_all(["ul", "ol"], recursive=False)]
                text = " ".join(item.get_text(" ").split())
                if text:
                    blocks.append(f"- {text}")
                for sub in nested:
                    _walk_list(sub, blocks)
        elif name == "table":
            flush()
            rows = []
            for tr in child.find_all("tr"):
                cells = [" ".join(c.get_text(" ").split()) for c in tr.find_all(["td", "th"])]
                rows.append("\t".join(cells))
            blocks.append("\n".join(rows))
        elif name == "br":
            inline.append("\n")
        elif name in BLOCKS or name == "li":
            flush()
            _walk(child, blocks, state)
        elif name in ("strong", "b") and _inline_heading(inline, child, children[index + 1:]):
            flush()  # a bold sub-heading run into the paragraph: "...any similar service. <b>Parents</b> Staff are..."
            blocks.append(_heading(min(state["level"] + 1, 6), " ".join(child.get_text(" ").split())))
        else:
            inline.append(child.get_text(" "))
    flush()


def _inline_heading(before: list[str], bold, after) -> bool:
    """A bold run is a sub-heading when it opens its block or follows a finished sentence, reads as a heading,
    and what follows it (if anything) starts a new sentence."""
    preceding = "".join(before).strip()
    if preceding and not re.search(r"[.!?:]$", preceding):
        return False
    if not bold_heading(bold.get_text(" ")):
        return False
    following = "".join(c.get_text(" ") if hasattr(c, "get_text") else str(c) for c in after).strip()
    return not following or starts_sentence(following)


def _walk_list(node, blocks: list[str]) -> None:
    for item in node.find_all("li"):
        for sub in item.find_all(["ul", "ol"]):
            sub.extract()
        text = " ".join(item.get_text(" ").split())
        if text:
            blocks.append(f"- {text}")


def _join(blocks: list[str]) -> str:
    """Blank lines between blocks, none between consecutive list items."""
    out: list[str] = []
    for block in blocks:
        if out and not (block.startswith("- ") and out[-1].startswith("- ")):
            out.append("")
        out.append(block)
    return "\n".join(out) + "\n"


# --- Document header metadata (for files without a catalogue entry) -------------------------

DATE = r"(\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|(?:\d{1,2}\s+)?[A-Z][a-z]+\.?\s+\d{4})"
APPROVED = re.compile(r"(?:approved|adopted|date of (?:last )?review|reviewed)[^:\n\t]*[:\t]\s*" + DATE, re.IGNORECASE)
NEXT_REVIEW = re.compile(r"(?:next review|review due|review date)[^:\n\t]*[:\t]\s*" + DATE, re.IGNORECASE)


def header_metadata(text: str, lines: int = 40) -> dict[str, str]:
    """Title and dates found near the top of a document: {"title", "approved", "next_review"} where found."""
    head = [line.strip().lstrip("#").strip() for line in text.splitlines()[:lines] if line.strip()]
    found: dict[str, str] = {}
    for line in head:
        title = re.sub(r"^(?:policy\s+)?title\s*[:\t]\s*", "", line, flags=re.IGNORECASE)
        if "\t" not in title and 3 <= len(title) <= 90 and not re.search(r"[.;,]$", title):
            found["title"] = title.strip()
            break
    header = "\n".join(head)
    for key, pattern in (("approved", APPROVED), ("next_review", NEXT_REVIEW)):
        match = pattern.search(header)
        if match:
            found[key] = match.group(1)
    return found


# suffix -> (format name, loader)
FORMATS = {".docx": ("docx", load_docx), ".pdf": ("pdf", load_pdf), ".html": ("html", load_html), ".htm": ("html", load_html)}
