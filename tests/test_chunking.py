"""Cleaning and chunking: extraction noise goes, the policy's words and structure stay, each chunk knows where it is."""

from __future__ import annotations

from index.build import Source, chunk_source, embedding_texts
from index.chunk import chunk_document, passages
from index.clean import clean
from index.model import Document
from tests.conftest import POLICIES

EXTRACTED = """\
Social Media Policy

Contents
1. Purpose\t2
2. Contact with pupils\t3
3. Review\t4

Approved by:\tGoverning Body\tDate: May 2024
Next review due by:\tMay 2025

1. Purpose

Growing together, learning forever

1.1 This policy sets out how staff use social media.

➤ It applies on school devices and on staff members' own devices.

2. Contact with pupils

Growing together, learning forever

2.1 Staff must not:

• accept friend requests from pupils;
> message pupils from personal accounts.

2.2 Any message a pupil sends to a personal account will be

reported to the designated safeguarding lead.

The school's official channels are as follows:

- The school Facebook page.

These accounts are managed by the office team.

3. Review

Growing together, learning forever

This policy will be reviewed every year.
"""


def chunks_of(text: str):
    return chunk_document(Document(school="oak", policy="social-media", path="policy.txt", text=text), clean(text))


def test_cleaning_drops_contents_slogans_and_list_markers_and_rejoins_broken_lines():
    cleaned = clean(EXTRACTED)
    assert "Contents" not in cleaned and "\t" not in cleaned
    assert "Growing together" not in cleaned  # the slogan repeated on every page
    assert "➤" not in cleaned and "•" not in cleaned and "\n> " not in cleaned
    assert "- accept friend requests from pupils;" in cleaned
    assert "will be reported to the designated safeguarding lead." in cleaned


def test_document_control_rows_move_word_for_word_to_a_document_details_list_at_the_end():
    cleaned = clean(EXTRACTED)
    tail = cleaned[cleaned.index("# Document details"):]
    assert "- Approved by: Governing Body | Date: May 2024" in tail
    assert "- Next review due by: May 2025" in tail
    assert cleaned.count("May 2025") == 1  # moved, not copied
    details = next(c for c in chunks_of(EXTRACTED) if c.heading == ("Document details",))
    assert "Next review due by: May 2025" in details.text and "Purpose" not in details.text
    other_table = clean("Staff must report concerns.\n\nDay\tRoom\nMonday\t4B\n")
    assert other_table == "Staff must report concerns.\n"  # cells of any other table are stray, as before


def test_numbered_clauses_keep_their_number_heading_and_the_list_they_introduce():
    chunks = {c.section: c for c in chunks_of(EXTRACTED) if c.section}
    assert chunks["2.1"].heading == ("Contact with pupils",)
    assert chunks["2.1"].text.splitlines() == [
        "Staff must not:", "- accept friend requests from pupils;", "- message pupils from personal accounts."]
    assert chunks["1.1"].heading == ("Purpose",)


def test_a_paragraph_that_points_back_continues_the_passage_it_points_to():
    chunks = chunks_of(EXTRACTED)
    managed = next(c for c in chunks if "These accounts" in c.text)
    assert managed.text.splitlines() == [
        "The school's official channels are as follows:", "- The school Facebook page.", "These accounts are managed by the office team."]
    assert managed.section == "2" and managed.heading == ("Contact with pupils",)


def test_only_a_paragraph_that_points_back_under_the_same_heading_joins_the_one_before():
    text = """# Roles

The headteacher leads on online safety.

This Policy is reviewed by governors.

It is the duty of all staff to report concerns.

They must also complete the annual training.

# Training

These sessions run every September.

%s

Those dates are published in the staff calendar.
""" % ("Staff read the policy. " * 70)
    texts = [c.text for c in chunks_of(text)]
    assert texts[:4] == [
        "The headteacher leads on online safety.",
        "This Policy is reviewed by governors.",  # names the document, not the paragraph before
        "It is the duty of all staff to report concerns.\nThey must also complete the annual training.",
        "These sessions run every September.",  # first under its heading: nothing to point back to
    ]
    assert texts[-1] == "Those dates are published in the staff calendar."  # joined, the chunk would pass 1,500 characters

    for opening in ("These guidelines apply to governors too.", "Those who breach it face action.", "It's important to be kind.",
                    "This school expects staff to take care."):
        assert len(chunks_of(f"# Roles\n\nThe headteacher leads on online safety.\n\n{opening}\n")) == 2, opening


def test_a_short_sentence_that_announces_a_topic_stays_with_the_paragraph_that_sets_it_out():
    text = """# Safeguarding

The use of social networking sites introduces a range of potential safeguarding risks to children.

Potential risks can include, but are not limited to:

- online bullying;
- grooming, exploitation or stalking.

Staff members will report any safeguarding issues they become aware of.

When using social media, staff must not:

- accept friend requests from pupils.

Staff must complete online safety training. It is renewed every year.

Staff who miss the training must book the next session.
"""
    texts = [c.text for c in chunks_of(text)]
    assert texts == [
        "The use of social networking sites introduces a range of potential safeguarding risks to children.\n"
        "Potential risks can include, but are not limited to:\n- online bullying;\n- grooming, exploitation or stalking.",
        "Staff members will report any safeguarding issues they become aware of.",  # the next opens with "When using"
        "When using social media, staff must not:\n- accept friend requests from pupils.",
        "Staff must complete online safety training. It is renewed every year.",  # two sentences: a passage of its own
        "Staff who miss the training must book the next session.",
    ]


def test_a_list_after_a_joined_paragraph_is_embedded_with_its_own_lead_in():
    text = """# Scope

This policy applies to personal and business use.

It applies whichever device is used:

- school laptops and tablets
- staff members' own phones
"""
    [chunk] = chunks_of(text)
    assert passages(chunk) == [
        "This policy applies to personal and business use.",
        "It applies whichever device is used: school laptops and tablets",
        "It applies whichever device is used: staff members' own phones",
    ]


def test_document_control_is_found_across_empty_cells_blank_lines_and_version_numbers():
    extracted = """Approved by\tDate:\t
Signed (Chair)\t

Version\tDate\tChanges
1.0\tMay 2023\tFirst issue

1.1\tJune 2024\tUpdated for Keeping Children Safe in Education 2024, with the new section on online safety and filtering

Role\tResponsible for
DSL\tSafeguarding concerns

3.1\tThe headteacher is responsible for reviewing incidents.

3.2 Staff must report concerns.
"""
    body, details = clean(extracted).split("# Document details")
    assert details.strip().split("\n") == [
        "- Approved by | Date:", "- Signed (Chair)", "- Version | Date | Changes", "- 1.0 | May 2023 | First issue",
        "- 1.1 | June 2024 | Updated for Keeping Children Safe in Education 2024, with the new section on online safety and filtering"]
    assert "Safeguarding concerns" not in body and "Role" not in details  # the next table, of roles: stray cells
    assert "3.1 The headteacher is responsible for reviewing incidents." in body
    assert {c.section for c in chunks_of(extracted)} == {"", "3.1", "3.2"}  # no clause 1.0 or 1.1 from the version rows
    assert clean("Review history\n\n1.0\tMay 2023\n1.1\tJune 2024\n") == "Review history\n"  # rows, not clauses 1.0 and 1.1


def test_document_control_lines_are_told_from_policy_lines_and_listed_once():
    extracted = """Responsible adult: a member of staff who holds a current DBS check

Approved apps: WhatsApp, Teams and Google Classroom

Approval: all posts are seen by the head of department first

All incidents will be logged and the outcome
reviewed by: the DSL and the headteacher.

2.1 Any message a pupil sends will be
Version 2\tMay 2024

reported to the designated safeguarding lead.

Version 2\tPage 3 of 9

Next review date: 14th March 2026.
Next review date: 14th March 2026.
Next review date: 14th March 2026.
Agreed by the Full Governing Body
"""
    body, details = clean(extracted).split("# Document details")
    assert details.strip().split("\n") == [
        "- Version 2 | May 2024", "- Next review date: 14th March 2026.", "- Agreed by the Full Governing Body"]
    assert "Responsible adult: a member of staff who holds a current DBS check" in body  # a definition
    assert "Approved apps: WhatsApp, Teams and Google Classroom" in body  # policy, though it says "approved"
    assert "Approval: all posts are seen by the head of department first" in body
    assert "All incidents will be logged and the outcome reviewed by: the DSL and the headteacher." in body
    assert "2.1 Any message a pupil sends will be reported to the designated safeguarding lead." in body
    assert "Page 3" not in body + details  # a footer row, not document control


def test_private_use_symbols_are_not_text():
    assert clean("\ue000Key staff:\tR Jones\n\uf0b7 Staff must report concerns.\n").startswith("Staff must report concerns.")


def test_the_bundled_policies_answer_review_date_questions_from_their_document_details():
    for school, expected in (("pennine-way", "Next review due by: April 2025"), ("mill-lane", "Next review date: January 2026"),
                             ("cardinal-heenan", "To be reviewed: March 2025")):
        path = next((POLICIES / school).glob("*.txt"))
        chunks, _ = chunk_source(Source(school, "social-media", path, "Social Media Policy"))
        details = [c for c in chunks if c.heading == ("Document details",)]
        assert len(details) == 1 and expected in details[0].text, school
        assert all("Document details" not in c.heading_path for c in chunks if c not in details)
