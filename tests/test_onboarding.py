"""Onboarding a school from the documents it has: a saved web page and a Word file, with the catalogue's term and
month dates, and `policybot show` / the index report telling the admin what each document became."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import yaml

from index.build import Source, read_source
from index.catalogue import CatalogueError, load_catalogue
from index.load import load_document
from tests.test_cli import data_dir, run  # noqa: F401 - data_dir is a fixture

COOKIE = "We use cookies on our website to give you the best experience. By clicking Accept All you consent to cookies."
TICKER = "Year 5 trip to the castle: letters home this week"

# A policy page as a school website saves it: a cookie notice, a header with the menu, a news ticker, breadcrumbs,
# the policy with a sub-heading typed in bold inside a paragraph, a sidebar and a footer.
PAGE = f"""<!DOCTYPE html><html><head><title>E-Safety and Social Media | Brookside Primary</title>
<script>window.dataLayer = [];</script></head><body>
<div class="consent-popup"><p>{COOKIE}</p><button>Accept All</button><button>Reject</button></div>
<header><a href="/">Brookside Primary School</a><ul><li><a href="/">Home</a></li><li><a href="/about">About</a></li>
<li><a href="/parents">Parents</a></li><li><a href="/policies">Policies</a></li></ul></header>
<div class="ticker"><span>News:</span><ul><li><a href="/n/1">{TICKER}</a></li><li><a href="/n/2">Sports day moved to Friday</a></li></ul></div>
<p class="crumbs"><a href="/">Home</a> / <a href="/policies">Policies</a> / Social media</p>
<div id="page-content"><article>
<h1>Social Media Policy</h1>
<h2>1. Scope</h2>
<p>This policy applies to every member of staff, governor and volunteer at Brookside Primary School, including supply
staff and students on placement, whenever they use social media in school or at home.</p>
<h2>2. Contact with pupils and parents</h2>
<p>Staff must not accept or send friend requests to current pupils, or to former pupils under the age of 18, on any
platform. Staff must not follow pupils on Instagram, TikTok or Snapchat. <strong>Parents and carers</strong> Staff
should not become online friends with parents of pupils; where a friendship began before the child joined the school
they tell the headteacher.</p>
<p><strong>Photographs</strong></p>
<p>Photographs of pupils are never posted on a personal account, and pupils' names never appear beside a photograph on
the school's own pages.</p>
<h2>3. Breaches</h2>
<p>A breach of this policy may lead to action under the school's disciplinary procedure.</p>
</article></div>
<aside><h3>Quick links</h3><ul><li><a href="/dates">Term dates</a></li><li><a href="/menu">Lunch menu</a></li></ul></aside>
<footer><p>Brookside Primary School, Station Road, Brookside BR1 1AA</p><p>Website by SchoolPages Ltd. Privacy | Sitemap</p></footer>
</body></html>"""


def brookside_docx(path: Path) -> Path:
    """A Word file as staff write them: sub-headings typed in bold rather than styled, a bold lead-in, a page number."""
    import docx

    document = docx.Document()
    document.add_heading("Acceptable Use of Devices", level=1)
    document.add_paragraph().add_run("Mobile phones").bold = True
    document.add_paragraph("Staff keep personal phones out of sight in classrooms and never use them to photograph pupils.")
    lead = document.add_paragraph()
    lead.add_run("School laptops").bold = True
    lead.add_run(" Staff lock a school laptop whenever they leave it, and never lend it to a family member.")
    document.add_paragraph("Page 2 of 7")
    document.add_paragraph().add_run("Staff must never use their own phone to photograph pupils.").bold = True
    document.sections[0].footer.paragraphs[0].text = "Brookside Primary School  Devices Policy v4.1"
    document.sections[0].header.paragraphs[0].text = "CONFIDENTIAL: staff only"
    document.save(path)
    return path


@pytest.fixture
def brookside(policies_copy) -> Path:
    """The bundled policies plus a new school, Brookside, from a saved web page and a Word file."""
    folder = policies_copy / "brookside"
    folder.mkdir()
    (folder / "social-media.html").write_text(PAGE, encoding="utf-8")
    brookside_docx(folder / "devices.docx")
    catalogue = yaml.safe_load((policies_copy / "catalogue.yaml").read_text(encoding="utf-8"))
    catalogue["schools"]["brookside"] = {
        "name": "Brookside Primary School", "ask": "the headteacher", "url": "https://www.brookside.example/policies",
        "policies": [
            {"id": "social-media", "file": "brookside/social-media.html", "title": "Social Media Policy",
             "approved": "Spring 2024", "next_review": "Autumn term 2025", "url": "https://www.brookside.example/sm"},
            {"id": "devices", "file": "brookside/devices.docx", "title": "Acceptable Use of Devices",
             "approved": "Sept 2024", "next_review": "September 2025"},
        ],
    }
    (policies_copy / "catalogue.yaml").write_text(yaml.safe_dump(catalogue, sort_keys=False), encoding="utf-8")
    return policies_copy


def test_terms_and_months_mean_their_last_day_and_a_school_may_have_a_url(brookside):
    school = load_catalogue(brookside).school("brookside")
    assert school.url == "https://www.brookside.example/policies"
    web, word = school.policies
    assert (web.approved, web.next_review) == (dt.date(2024, 3, 31), dt.date(2025, 12, 31))
    assert (word.approved, word.next_review) == (dt.date(2024, 9, 30), dt.date(2025, 9, 30))


def test_a_catalogue_mistake_is_named_with_its_line(brookside):
    path = brookside / "catalogue.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    typo = next(i for i, line in enumerate(lines) if "next_review: September 2025" in line)
    lines[typo] = lines[typo].replace("next_review", "nxt_review")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError) as error:
        load_catalogue(brookside)
    assert f"catalogue.yaml line {typo + 1}:" in str(error.value) and "nxt_review" in str(error.value)
    lines[typo] = lines[typo].replace("nxt_review: September 2025", "next_review: Michaelmas 2025")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError) as error:
        load_catalogue(brookside)
    assert f"line {typo + 1}:" in str(error.value) and "a term (Spring 2026)" in str(error.value)
    lines[typo] = lines[typo].replace("next_review: Michaelmas 2025", "next_review: September 2025")
    school = next(i for i, line in enumerate(lines) if line.strip() == "brookside:")
    for broken, expected in ((lines[school].replace("brookside", "Brookside"), "school id 'Brookside'"),  # a bad id: its own line
                             (lines[school].replace(":", ""), "not valid YAML")):  # a missing colon: that line, not the next
        path.write_text("\n".join(lines[:school] + [broken] + lines[school + 1:]) + "\n", encoding="utf-8")
        with pytest.raises(CatalogueError) as error:
            load_catalogue(brookside)
        assert f"line {school + 1}:" in str(error.value) and expected in str(error.value), str(error.value)


def test_web_page_clutter_stays_out_and_is_reported(brookside):
    reading = read_source(Source("brookside", "social-media", brookside / "brookside" / "social-media.html", "Social Media Policy"))
    indexed = "\n".join(chunk.text for chunk in reading.chunks)
    for clutter in (COOKIE, TICKER, "Lunch menu", "Station Road", "SchoolPages", "About"):
        assert clutter not in indexed
    dropped = [text for reason, text in reading.dropped if reason == "web page clutter"]
    assert COOKIE in dropped and any(TICKER in text for text in dropped)
    assert "Staff must not follow pupils on Instagram, TikTok or Snapchat." in indexed
    by_heading = {chunk.heading_path: chunk for chunk in reading.chunks}
    parents = next(c for path, c in by_heading.items() if path.endswith("Parents and carers"))
    assert parents.section == "2" and parents.text.startswith("Staff should not become online friends with parents")
    assert any(path.endswith("Photographs") for path in by_heading)


def test_a_word_file_with_bold_sub_headings_and_a_page_number(brookside):
    text = load_document(brookside / "brookside" / "devices.docx", "brookside", "devices").text
    assert "## Mobile phones\n" in text and "## School laptops\n\nStaff lock a school laptop" in text
    # a bold sentence is emphasis, not a heading
    assert "\nStaff must never use their own phone to photograph pupils." in text and "# Staff must never" not in text
    reading = read_source(Source("brookside", "devices", brookside / "brookside" / "devices.docx", "Devices"))
    assert ("stray marker, link or page number", "Page 2 of 7") in reading.dropped
    # Word keeps page headers and footers apart from the body: never indexed, and the report says so
    assert ("page header or footer", "Brookside Primary School Devices Policy v4.1") in reading.dropped
    assert ("page header or footer", "CONFIDENTIAL: staff only") in reading.dropped
    assert all("v4.1" not in chunk.text and "CONFIDENTIAL" not in chunk.text for chunk in reading.chunks)
    assert all("Page 2 of 7" not in chunk.text for chunk in reading.chunks)
    assert {"Acceptable Use of Devices > Mobile phones", "Acceptable Use of Devices > School laptops"} <= set(reading.headings)


def test_show_and_the_index_report_say_what_each_document_became(brookside, data_dir):
    shown = run("show", "brookside", data=data_dir, policies=brookside)
    assert shown.returncode == 0, shown.stderr
    assert "brookside/social-media (Social Media Policy)" in shown.stdout and "not yet published" in shown.stdout
    clauses, _, noise = shown.stdout.partition("dropped as noise")
    assert "Parents and carers" in clauses and "Staff must not accept or send friend requests" in clauses
    assert "cookies" not in clauses and "castle" not in clauses
    assert "web page clutter: 'We use cookies" in noise and "castle" in noise

    (brookside / "brookside" / "governors-minutes.odt").write_bytes(b"not read")
    built = run("index", data=data_dir, policies=brookside)
    assert built.returncode == 0, built.stderr
    report = built.stdout
    added = report[report.index("Added: brookside/social-media"):]
    assert "clauses under" in added.splitlines()[1] and "Contact with pupils and parents" in added.splitlines()[1]
    assert "dropped as noise:" in added and "web page clutter" in added
    assert "Added: brookside/devices" in report
    assert "Not indexed: brookside/governors-minutes.odt: not a format PolicyBot reads" in report
    assert "Not indexed: brookside/governors-minutes.odt" in run("show", "brookside", data=data_dir, policies=brookside).stdout
    devices = run("show", "brookside", "--policy", "devices", data=data_dir, policies=brookside).stdout
    assert "published" in devices and "page header or footer: 'CONFIDENTIAL: staff only'" in devices
    reading = read_source(Source("brookside", "devices", brookside / "brookside" / "devices.docx", "Devices"))
    whole = [" ".join(chunk.text.split()) for chunk in reading.chunks]
    assert any(text not in " ".join(devices.split()) for text in whole)  # cut to one line each
    full = run("show", "brookside", "--policy", "devices", "--full", data=data_dir, policies=brookside).stdout
    assert all(text in " ".join(full.split()) for text in whole)

    # a policy with no url of its own links its citations to the school's page
    asked = run("ask", "--json", "--school", "brookside", "can I lend my school laptop to my husband?", data=data_dir, policies=brookside)
    citations = json.loads(asked.stdout)["citations"]
    by_policy = {c["policy"]: c["url"] for c in citations}
    assert by_policy.get("devices") == "https://www.brookside.example/policies", asked.stdout

    missing = run("show", "nowhere", data=data_dir, policies=brookside)
    assert missing.returncode != 0 and "brookside" in missing.stderr and "Traceback" not in missing.stderr


def test_every_file_not_indexed_is_listed_with_why(policies_copy):
    from index.build import all_sources

    (policies_copy / "chiltern" / "old-policy.odt").write_bytes(b"odt")
    (policies_copy / "chiltern" / "~$cial-media.docx").write_bytes(b"lock")
    (policies_copy / "chiltern" / "archive").mkdir()
    (policies_copy / "chiltern" / "archive" / "2019.txt").write_text("Old policy text.", encoding="utf-8")
    (policies_copy / "oakwood").mkdir()
    (policies_copy / "oakwood" / "social-media.txt").write_text("Staff must not befriend pupils.", encoding="utf-8")
    (policies_copy / "loose.pdf").write_bytes(b"%PDF")
    found = all_sources(policies_copy, load_catalogue(policies_copy))
    why = dict(found.not_indexed)
    assert "not a format PolicyBot reads" in why["chiltern/old-policy.odt"]
    assert "Word lock file" in why["chiltern/~$cial-media.docx"]
    assert "sub-folder" in why["chiltern/archive/2019.txt"]
    assert "no school 'oakwood' in catalogue.yaml" in why["oakwood/social-media.txt"]
    assert "outside any school's folder" in why["loose.pdf"]
    assert not any(path.endswith("social-media.txt") and path.startswith(("chiltern", "kingsmead")) for path in why)
