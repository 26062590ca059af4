"""Retrieval quality with the real model and a real FAISS index on the bundled policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.render import answer_text
from bot.core.answering import Question
from bot.evaluate import evaluate, load_questions, squash
from tests.conftest import POLICIES, SHARED_EVAL, TEST_DATA, TODAY

EX_PUPIL = "can I accept a follow from an ex-pupil aged 18?"
# Each school answers the ex-pupil question differently; the deciding clause for each.
DECIDING_CLAUSE = {
    "mill-lane": "ex-pupils under the age of 18",
    "pennine-way": "pupils past or present",
    "kingsmead": "advise staff not to be friends with or communicate with former students",
    "cardinal-heenan": "ex-pupils under the age of 18, or from parents on their personal social media accounts such as Facebook, unless they are family members",
    "chiltern": "below the age of nineteen",
}


# (file, hit@1 floor, hit@3 floor, unanswerable questions it may answer), with the default model (all-mpnet-base-v2).
# Each floor sits 0.03 under what the method measured on 2026-12-07 (docs/quality.md), so a regression fails; they
# are not the product's bar. These sets are in the dev set's register; the real-register first-look sets are below.
# The held-out and blind sets were never tuned on.
QUESTION_SETS = [
    (SHARED_EVAL / "dev-questions.yaml", 0.90, 0.97, 0),
    (TEST_DATA / "holdout-questions.yaml", 0.85, 0.95, 0),
    (TEST_DATA / "blind-questions.yaml", 0.85, 0.95, 0),
    (TEST_DATA / "blind2-questions.yaml", 0.81, 0.89, 0),
    (TEST_DATA / "blind3-questions.yaml", 0.90, 0.95, 1),
    (TEST_DATA / "blind4-questions.yaml", 0.85, 0.95, 0),
    (TEST_DATA / "blind5-questions.yaml", 0.83, 0.95, 2),
    (TEST_DATA / "blind6-questions.yaml", 0.85, 0.90, 0),
    (TEST_DATA / "devstyle1-questions.yaml", 0.92, 0.94, 0),
    (TEST_DATA / "devstyle2-questions.yaml", 0.78, 0.94, 0),
    (TEST_DATA / "devstyle3-questions.yaml", 0.85, 0.94, 0),
    (TEST_DATA / "devstyle4-questions.yaml", 0.87, 0.92, 0),
    (TEST_DATA / "devstyle5-questions.yaml", 0.81, 0.94, 0),
    (TEST_DATA / "devstyle6-questions.yaml", 0.90, 0.97, 1),
    (TEST_DATA / "devstyle7-questions.yaml", 0.87, 0.97, 0),
    (TEST_DATA / "devstyle8-questions.yaml", 0.92, 0.94, 0),
    (TEST_DATA / "devstyle9-questions.yaml", 0.90, 0.97, 0),
    (TEST_DATA / "devstyle10-questions.yaml", 0.92, 0.97, 1),
    (TEST_DATA / "devstyle11-questions.yaml", 0.85, 0.94, 0),
    (TEST_DATA / "devstyle12-questions.yaml", 0.85, 0.92, 0),
    (TEST_DATA / "devstyle13-questions.yaml", 0.85, 0.92, 0),
    (TEST_DATA / "devstyle14-questions.yaml", 0.72, 0.85, 0),
    (TEST_DATA / "devstyle15-questions.yaml", 0.67, 0.83, 0),
    (TEST_DATA / "devstyle16-questions.yaml", 0.81, 0.94, 0),
    (TEST_DATA / "devstyle17-questions.yaml", 0.94, 0.97, 0),
    (TEST_DATA / "devstyle18-questions.yaml", 0.85, 0.97, 0),
    (TEST_DATA / "devstyle19-questions.yaml", 0.88, 0.97, 0),
    (TEST_DATA / "devstyle20-questions.yaml", 0.88, 0.94, 0),
    (TEST_DATA / "devstyle21-questions.yaml", 0.87, 0.92, 0),
    (TEST_DATA / "devstyle22-questions.yaml", 0.77, 0.94, 0),
    (TEST_DATA / "devstyle23-questions.yaml", 0.82, 0.92, 2),
    (TEST_DATA / "devstyle24-questions.yaml", 0.77, 0.94, 0),
    (TEST_DATA / "devstyle25-questions.yaml", 0.89, 0.97, 0),
    (TEST_DATA / "devstyle26-questions.yaml", 0.77, 0.92, 0),
    (TEST_DATA / "devstyle27-questions.yaml", 0.87, 0.94, 0),
    (TEST_DATA / "devstyle28-questions.yaml", 0.92, 0.94, 0),
    (TEST_DATA / "devstyle29-questions.yaml", 0.78, 0.90, 0),
    (TEST_DATA / "devstyle30-questions.yaml", 0.85, 0.92, 0),
    (TEST_DATA / "devstyle31-questions.yaml", 0.82, 0.87, 3),
    (TEST_DATA / "devstyle32-questions.yaml", 0.92, 0.97, 4),
    (TEST_DATA / "devstyle33-questions.yaml", 0.85, 0.93, 2),
    (TEST_DATA / "devstyle34-questions.yaml", 0.73, 0.81, 1),
    (TEST_DATA / "devstyle35-questions.yaml", 0.85, 0.94, 1),  # the learned decision answers "who do I contact to book the hall"
    (TEST_DATA / "devstyle36-questions.yaml", 0.76, 0.94, 0),
    (TEST_DATA / "devstyle37-questions.yaml", 0.87, 0.94, 0),
    (TEST_DATA / "devstyle38-questions.yaml", 0.85, 0.90, 0),
    (TEST_DATA / "devstyle39-questions.yaml", 0.83, 0.92, 0),
    (TEST_DATA / "devstyle40-questions.yaml", 0.87, 0.94, 0),
    (TEST_DATA / "devstyle41-questions.yaml", 0.92, 0.94, 0),
    (TEST_DATA / "devstyle42-questions.yaml", 0.87, 0.92, 0),
    (TEST_DATA / "devstyle43-questions.yaml", 0.76, 0.87, 1),
    (TEST_DATA / "devstyle44-questions.yaml", 0.81, 0.94, 0),
]


@pytest.mark.parametrize(("path", "hit1", "hit3", "may_answer"), QUESTION_SETS, ids=lambda v: getattr(v, "stem", str(v)))
def test_question_sets_meet_the_quality_bar(answerer, path, hit1, hit3, may_answer):
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    report = evaluate(answerer, None, load_questions(path))
    figures = report.figures()
    print(path.name, figures, report.misses)
    assert figures["hit@1"] >= hit1, report.misses
    assert figures["hit@3"] >= hit3, report.misses
    assert report.unanswerable - report.declined <= may_answer, report.misses
    assert report.foreign_citations == 0


@pytest.mark.parametrize("school", sorted(DECIDING_CLAUSE))
def test_ex_pupil_question_quotes_each_schools_own_clause(answerer, school):
    """Each school's own rule is what the bot shows: quoted as the answer or, where the learned decision is not sure
    (Pennine Way: two clauses of its own match almost equally), as the nearest clauses; never another school's."""
    answer = answerer.answer(Question(text=EX_PUPIL, school=school))
    assert answer.answered or (school == "pennine-way" and answer.status == "unsure")
    quoted = answer.citations[: answer.quoted]
    assert any(squash(DECIDING_CLAUSE[school]) in squash(c.text) for c in quoted), [c.text for c in quoted]
    assert squash(DECIDING_CLAUSE[school]) in squash(answer_text(answer)) or school == "cardinal-heenan"
    assert all(c.school == school for c in answer.citations)


def test_the_five_schools_get_five_different_clauses(answerer):
    texts = {answerer.answer(Question(text=EX_PUPIL, school=s)).citations[0].text for s in DECIDING_CLAUSE}
    assert len(texts) == 5


def test_answer_names_school_policy_and_section_and_warns_when_overdue(answerer):
    answer = answerer.answer(Question(text="Are gambling sites covered by the social media policy?", school="chiltern"))
    assert answer.answered
    assert "Chiltern Learning Trust" in answer_text(answer)
    assert "section 1.3" in answer_text(answer)
    assert "due for review on 31 December 2024" in answer_text(answer)


def test_uncovered_question_says_so_and_names_who_to_ask(answerer):
    answer = answerer.answer(Question(text="How many days of paternity leave do I get?", school="pennine-way"))
    assert not answer.answered
    assert "does not cover this" in answer_text(answer)
    assert "Senior Leadership Team" in answer_text(answer)


def test_a_clause_without_the_time_asked_for_does_not_answer_when(answerer):
    """Pennine Way's policy talks of working hours and the school day but states no times: a strong word
    match is not an answer to "what time"; the same policy does answer how often it is reviewed."""
    when = answerer.answer(Question(text="What time does the school day start?", school="pennine-way"))
    assert not when.answered and "Senior Leadership Team" in answer_text(when)
    review = answerer.answer(Question(text="How often is the social media policy reviewed?", school="pennine-way"))
    assert review.answered


def test_a_question_about_another_area_of_school_life_is_not_answered_from_this_policy(answerer):
    """"Giving medicine to pupils" shares pupils and procedure with Mill Lane's social media policy, and its best
    clause there scores as a real answer would; as a whole the question is far nearer an area that a medicines
    policy covers (index/areas.yaml) than anything in this one. A social media question touching another area
    of school life (photos of pupils, exam revision) is still answered from it, or shown its nearest clauses when the
    learned decision is unsure (bot/core/decision.py), never declined as another area's: each of these is a little nearer an area
    than to the policy, and was refused when the areas were split into short parts ("photographs of pupils")."""
    medicine = answerer.answer(Question(text="What is the procedure for giving medicine to pupils?", school="mill-lane"))
    assert not medicine.answered and "line manager or the Head Teacher" in answer_text(medicine)
    for text, school in [("Is it ok to post photos of pupils on TikTok?", "pennine-way"),
                         ("Is it ok to post photos of pupils on TikTok?", "chiltern"),
                         ("Can I message pupils on WhatsApp about exam revision?", "chiltern")]:
        shown = answerer.answer(Question(text=text, school=school))
        assert shown.status != "not_covered" and shown.citations[0].school == school, text  # answered, or its nearest clauses


def test_a_school_that_loads_a_policy_on_that_area_answers_from_it(tmp_path, embedder):
    """The area check compares the question with the school's own policies: once Mill Lane loads a medicines
    policy, its clauses are the nearer and the medicine question is answered from them (however surely a clause
    matches: no confidence overrules the check here, so only the comparison decides)."""
    from bot.core.answering import Answerer
    from bot.core.coverage import Coverage
    from index.live import LiveIndex
    from index.publish import publish

    policies = tmp_path / "policies"
    (policies / "mill-lane").mkdir(parents=True)
    (policies / "mill-lane" / "social-media.txt").write_text((POLICIES / "mill-lane" / "social-media.txt").read_text(encoding="utf-8"), encoding="utf-8")
    (policies / "mill-lane" / "medicines.txt").write_text(
        "Supporting Pupils with Medical Conditions\n\n"
        "1. Administering medicines\n"
        "1.1 Medicines are given in school only when a parent or carer has completed and signed the consent form.\n"
        "1.2 Only members of staff who have had the training may give a pupil medicine, and a second adult checks the dose.\n"
        "1.3 Every dose is recorded on the pupil's medicine record, with the time and the name of the member of staff.\n"
        "2. Storage\n"
        "2.1 Medicines are kept in their original containers in the locked cabinet in the school office.\n",
        encoding="utf-8")
    (policies / "catalogue.yaml").write_text(
        "schools:\n  mill-lane:\n    name: Mill Lane Community Primary School\n    ask: your line manager or the Head Teacher\n"
        "    policies:\n"
        "      - {id: social-media, file: mill-lane/social-media.txt, title: Social Media Policy, approved: 2024-01-31, next_review: 2026-01-31}\n"
        "      - {id: medicines, file: mill-lane/medicines.txt, title: Supporting Pupils with Medical Conditions Policy,"
        " approved: 2025-09-01, next_review: 2027-09-01}\n", encoding="utf-8")
    publish(policies, tmp_path / "index", embedder, progress=False)
    answerer = Answerer(LiveIndex(tmp_path / "index", embedder, policies_dir=policies), today=lambda: TODAY,
                        coverage=Coverage(area_overruled_from=1.0))
    answer = answerer.answer(Question(text="What is the procedure for giving medicine to pupils?", school="mill-lane"))
    assert answer.answered
    assert answer.citations[0].policy == "medicines"
    # a school with two policies: a question neither answers names both, in a sentence that reads
    leave = answerer.answer(Question(text="How many days of paternity leave do I get?", school="mill-lane"))
    assert not leave.answered
    assert "policies (Social Media Policy and Supporting Pupils with Medical Conditions Policy)" in answer_text(leave)
    assert " or Supporting" not in answer_text(leave)


def test_question_naming_a_policy_the_school_has_not_loaded_is_not_answered_from_another(answerer):
    answer = answerer.answer(Question(text="What does the uniform policy say about trainers?", school="pennine-way"))
    assert not answer.answered
    assert "uniform policy" in answer_text(answer) and "Social Media Policy" in answer_text(answer)
    assert "Senior Leadership Team" in answer_text(answer)


def test_naming_the_loaded_policy_in_other_words_still_answers(answerer):
    answer = answerer.answer(Question(text="Does the social networking policy cover agency workers?", school="mill-lane"))
    assert answer.answered
    assert squash("fixed-term employees and agency workers") in squash(answer.citations[0].text)


def test_the_schools_own_name_does_not_steer_the_search(answerer):
    with_name = answerer.answer(Question(text="My Twitter bio says I work at Kingsmead, do I need to say my views are my own?",
                                         school="kingsmead"))
    without = answerer.answer(Question(text="My Twitter bio says I work at the school, do I need to say my views are my own?",
                                       school="kingsmead"))
    assert with_name.citations[0].text == without.citations[0].text
    # clauses that merely mention "Kingsmead School" must not crowd in because the question named it
    named = {c.text for c in with_name.citations[:3] if "kingsmead" in c.text.lower()}
    assert named <= {c.text for c in without.citations[:3]}, named


def test_a_middling_match_is_shown_as_the_nearest_clause_with_who_to_ask(answerer):
    answer = answerer.answer(Question(text="Am I allowed to play online games with colleagues?", school="mill-lane"))
    assert not answer.answered and answer.quoted == 2  # the two nearest, for reference
    assert "that clearly answers this" in answer_text(answer) and "line manager or the Head Teacher" in answer_text(answer)
    assert squash(answer.citations[0].quote) in squash(answer_text(answer))
    assert all(c.school == "mill-lane" for c in answer.citations)



def test_rewordings_rank_the_clauses_but_do_not_lift_confidence(bundled_index, embedder):
    """ "spy on" finds the monitoring clause (all-mpnet-base-v2 finds it without the rewordings too; MiniLM did
    not); each clause's confidence is the same with or without rewordings, and so is the decision on every
    unanswerable question of the calibration sets."""
    from bot.core.answering import CANDIDATES, confidence
    from index.lexical import Synonyms
    from index.search import Retriever
    from index.store import load, resolve_current

    stored = load(resolve_current(bundled_index))
    shipped = Synonyms.load()
    assert shipped.rewordings
    loose, strict = Retriever(stored, embedder, shipped), Retriever(stored, embedder, Synonyms(shipped.groups))
    question, school = "Is the school allowed to spy on what I do on its computers?", "pennine-way"
    reworded = loose.search(question, school, k=100)
    plain = {hit.chunk: hit for hit in strict.search(question, school, k=100)}
    assert "monitor, intercept and review" in reworded[0].chunk.text
    assert all(hit.confidence == pytest.approx(plain[hit.chunk].confidence, abs=1e-6) for hit in reworded)
    unanswerable = [row for path in (SHARED_EVAL / "dev-questions.yaml", TEST_DATA / "holdout-questions.yaml") if path.is_file()
                    for row in load_questions(path) if row.get("answered", True) is False]
    assert unanswerable or not (SHARED_EVAL / "dev-questions.yaml").is_file()
    for row in unanswerable:
        assert confidence(loose.search(row["q"], row["school"], k=CANDIDATES)) == pytest.approx(
            confidence(strict.search(row["q"], row["school"], k=CANDIDATES)), abs=1e-6), row["q"]
