"""Word, PDF and HTML policies chunk and cite like their plain-text originals.

The .docx and .pdf files are written here from the bundled sample policies with
python-docx and fpdf2, the way a school would: Word heading styles and list
styles, a PDF with a running header and a page-number footer on every page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.build import Source, chunk_source
from index.load import DocumentError, load_document
from tests.conftest import POLICIES

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BULLET = re.compile(r"^\s*- (.*)$")
NUMBERED_HEADING = re.compile(r"^\d{1,2}\.?\s+[A-Z][^.;:!]{0,80}$")
PLAIN_HEADING = re.compile(r"^[A-Z][^.;:!\t]{2,60}\??$")
MARKUP = re.compile(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1")


def squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def clause_set(chunks) -> set[tuple[str, str]]:
    return {(chunk.section, squash(chunk.text)) for chunk in chunks}


def blocks(text: str):
    """The sample text as a Word author would type it: (kind, lines) with kind heading1/heading2/bullet/para/table/blank."""
    out: list[tuple[str, list[str]]] = []
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append(("blank", []))
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append((f"heading{min(level, 2)}", [line.lstrip("#").strip()]))
        elif "\t" in line:
            if out and out[-1][0] == "table":
                out[-1][1].append(stripped)
            else:
                out.append(("table", [stripped]))
        elif BULLET.match(line):
            out.append(("bullet", [BULLET.match(line).group(1).strip()]))
        elif previous and out and out[-1][0] == "bullet":
            out[-1][1].append(stripped)  # a line typed under a list item (Shift+Enter)
        elif NUMBERED_HEADING.match(stripped):
            out.append(("heading1", [stripped]))
        else:
            out.append(("para", [stripped]))
        previous = stripped
    return out


def _runs(paragraph, text: str) -> None:
    position = 0
    for match in MARKUP.finditer(text):
        paragraph.add_run(text[position:match.start()])
        run = paragraph.add_run(match.group(2))
        run.bold, run.italic = match.group(1) == "**", match.group(1) == "*"
        position = match.end()
    paragraph.add_run(text[position:])


def to_docx(txt: Path, out: Path) -> Path:
    import docx

    document = docx.Document()
    for kind, lines in blocks(txt.read_text(encoding="utf-8")):
        if kind == "blank":
            continue
        if kind == "table":
            rows = [line.split("\t") for line in lines]
            width = max(map(len, rows))
            table = document.add_table(rows=len(rows), cols=width)
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
            continue
        style = {"heading1": "Heading 1", "heading2": "Heading 2", "bullet": "List Bullet", "para": None}[kind]
        paragraph = document.add_paragraph(style=style)
        for i, line in enumerate(lines):
            if i:
                paragraph.add_run().add_break()
            _runs(paragraph, line)
    document.core_properties.title = "Social Media Policy"
    document.save(out)
    return out


def to_pdf(txt: Path, out: Path, header: str) -> Path:
    from fpdf import FPDF

    class PolicyPDF(FPDF):
        def header(self):
            self.set_font("body", size=8)
            self.cell(0, 5, header, align="C")
            self.ln(10)

        def footer(self):
            self.set_y(-12)
            self.set_font("body", size=8)
            self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = PolicyPDF(format="A4")
    pdf.add_font("body", fname=str(FONT))
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    for kind, lines in blocks(txt.read_text(encoding="utf-8")):
        pdf.set_font("body", size=10)
        if kind == "blank":
            pdf.ln(5)
            continue
        if kind == "table":  # one text cell per column, as a PDF export of a Word table lays them out
            pdf.set_font("body", size=6)
            for line in lines:
                for column, cell in enumerate(line.split("\t")):
                    pdf.set_x(pdf.l_margin + 30 * column + (30 if column > 1 else 0))
                    pdf.cell(0, 4, cell.strip())
                pdf.ln(4)
            pdf.ln(1.5)
            continue
        if kind.startswith("heading"):
            pdf.set_font("body", size=13 if kind == "heading1" else 11.5)
        for i, line in enumerate(lines):
            line = MARKUP.sub(r"\2", line)
            text = f"• {line}" if kind == "bullet" and i == 0 else line
            pdf.multi_cell(0, 4.4, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
    pdf.output(str(out))
    return out


def chunks_of(path: Path, school: str):
    return chunk_source(Source(school, "social-media", path, "Social Media Policy"))[0]


@pytest.mark.parametrize("school", ["chiltern", "kingsmead", "mill-lane", "pennine-way", "cardinal-heenan"])
def test_docx_chunks_and_citations_match_the_text_version(tmp_path, school):
    txt = POLICIES / school / "social-media.txt"
    word = to_docx(txt, tmp_path / "social-media.docx")
    assert load_document(word, school, "social-media").format == "docx"
    assert clause_set(chunks_of(word, school)) == clause_set(chunks_of(txt, school))


@pytest.mark.skipif(not FONT.is_file(), reason="needs the DejaVu font to write Unicode PDFs")
@pytest.mark.parametrize("school", ["chiltern", "kingsmead", "mill-lane", "pennine-way", "cardinal-heenan"])
def test_pdf_chunks_and_citations_match_the_text_version(tmp_path, school):
    txt = POLICIES / school / "social-media.txt"
    header = f"{school.title()} School - Social Media Policy (uncontrolled when printed)"
    pdf = to_pdf(txt, tmp_path / "social-media.pdf", header)
    from pypdf import PdfReader

    assert len(PdfReader(str(pdf)).pages) >= 2  # the running header and footer really repeat
    text = load_document(pdf, school, "social-media").text
    assert "uncontrolled when printed" not in text and "Page 2 of" not in text
    assert clause_set(chunks_of(pdf, school)) == clause_set(chunks_of(txt, school))


def test_numbered_chiltern_clauses_survive_every_format(tmp_path):
    txt = POLICIES / "chiltern" / "social-media.txt"
    word = chunks_of(to_docx(txt, tmp_path / "p.docx"), "chiltern")
    sections = {chunk.section for chunk in word}
    assert {"1.1", "2.3", "5.2", "5.6"} <= sections
    clause = next(chunk for chunk in word if chunk.section == "5.2")
    assert clause.text.startswith("Employees, volunteers and casual workers must alert the Headteacher")


def test_word_automatic_numbering_and_headings(tmp_path):
    import docx

    document = docx.Document()
    document.add_paragraph("Use of personal devices", style="Heading 1")
    for text in ("Staff must not use personal phones to photograph pupils.", "Devices must be locked with a PIN."):
        document.add_paragraph(text, style="List Number")
    document.save(tmp_path / "devices.docx")
    text = load_document(tmp_path / "devices.docx", "s", "p").text
    assert text.splitlines()[0] == "# Use of personal devices"
    assert "- 1 Staff must not use personal phones" in text and "- 2 Devices must be locked" in text


def test_html_headings_lists_and_no_navigation(tmp_path):
    page = tmp_path / "policy.html"
    page.write_text(
        "<html><head><title>x</title><style>p{}</style></head><body><nav>Home | Policies</nav>"
        "<h1>Social Media Policy</h1><h2>6 Personal use</h2><p>6.1 Staff must not accept pupils as friends.</p>"
        "<p>Staff should:</p><ul><li>keep profiles private</li><li>report concerns</li></ul>"
        "<script>track()</script></body></html>",
        encoding="utf-8",
    )
    text = load_document(page, "s", "p").text
    assert "Home | Policies" not in text and "track()" not in text
    assert "# Social Media Policy" in text and "\n6 Personal use\n" in text
    assert "- keep profiles private\n- report concerns" in text
    chunks = chunks_of(page, "s")
    assert any(c.section == "6.1" and c.text == "Staff must not accept pupils as friends." for c in chunks)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _blank_pdf(path: Path, password: str | None = None) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    if password:
        writer.encrypt(password)
    with open(path, "wb") as out:
        writer.write(out)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: _blank_pdf(d / "scanned.pdf"), "no text layer"),
        (lambda d: _blank_pdf(d / "locked.pdf", password="s3cret"), "password-protected"),
        (lambda d: _write(d / "empty.docx", b""), "empty"),
        (lambda d: _write(d / "broken.pdf", b"%PDF-1.7\n garbage"), "damaged"),
        (lambda d: _write(d / "broken.docx", b"PK\x03\x04 not really a zip"), "damaged"),
        (lambda d: _write(d / "policy.odt", b"x"), "unknown format"),
    ],
    ids=["scanned-pdf", "encrypted-pdf", "zero-byte", "corrupt-pdf", "corrupt-docx", "unknown-format"],
)
def test_unreadable_files_name_the_file_and_the_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(DocumentError) as error:
        load_document(path, "s", "p")
    assert str(path) in str(error.value) and reason in str(error.value)


def test_word_clause_numbers_typed_before_a_tab_and_a_contents_list(tmp_path):
    """A tab after a clause number is no table cell; the tabs of a contents list still mark its page numbers."""
    import docx

    document = docx.Document()
    for line in ("Contents", "1.\tPurpose\t2", "2.\tContact with pupils\t3"):
        document.add_paragraph(line)
    document.add_heading("1. Purpose", level=1)
    document.add_paragraph("1.1\tStaff must report concerns to the DSL.")
    document.add_heading("2. Contact with pupils", level=1)
    document.add_paragraph("2.1\tStaff must not message pupils from personal accounts.")
    document.save(tmp_path / "policy.docx")
    chunks, _ = chunk_source(Source("oak", "policy", tmp_path / "policy.docx", "Policy"))
    assert [(c.section, c.heading, c.text) for c in chunks] == [
        ("1.1", ("Purpose",), "Staff must report concerns to the DSL."),
        ("2.1", ("Contact with pupils",), "Staff must not message pupils from personal accounts."),
    ]
