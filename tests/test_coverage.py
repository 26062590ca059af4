"""Which policy a question names, and whether a match is good enough to answer from."""

from __future__ import annotations

import pytest

from bot.core.coverage import Coverage, answer_type, gives_answer_type, other_policy_named, without_school_name
from index.lexical import Synonyms

TITLES = ["Social Media Policy"]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("What is the uniform policy for pupils?", "uniform"),
        ("Where is our anti-bullying policy?", "anti-bullying"),
        ("What does the school's child protection policy say about photos?", "child protection"),
    ],
)
def test_a_policy_named_that_the_school_has_not_loaded_is_reported(question, named):
    assert other_policy_named(question, TITLES, Synonyms.load()) == named


@pytest.mark.parametrize(
    "question",
    [
        "Could a breach of the policy be referred to the LADO?",
        "Do I have to say something if I know a colleague is breaking the policy?",
        "What does our policy say about reporting abuse online?",
        "Does the social networking policy cover TikTok?",
        "Under the new policy can I post photos?",
        "What's the school policy on staff wearing jeans?",
    ],
)
def test_questions_naming_no_other_policy_pass(question):
    assert other_policy_named(question, TITLES, Synonyms.load()) is None


def test_strong_match_counts_even_with_unfamiliar_words_and_weak_never_does():
    coverage = Coverage(min_score=0.3, strong_score=0.5, max_unknown_share=0.4)
    assert coverage.covers(0.55, unknown_share=0.9)
    assert coverage.covers(0.4, unknown_share=0.2)
    assert not coverage.covers(0.4, unknown_share=0.5)
    assert not coverage.covers(0.25, unknown_share=0.0)


def test_a_question_much_nearer_another_area_of_school_life_is_not_covered_unless_a_clause_matches_it_surely():
    coverage = Coverage(min_score=0.3, strong_score=0.5, max_unknown_share=0.4, max_area_lead=0.15, area_overruled_from=0.6)
    assert coverage.covers(0.55, unknown_share=0.0, area_lead=0.1)
    assert not coverage.covers(0.55, unknown_share=0.0, area_lead=0.2)
    assert coverage.covers(0.65, unknown_share=0.0, area_lead=0.4)  # a clause this sure answers it whatever else it is near
    off = Coverage(min_score=0.3, strong_score=0.5, max_unknown_share=0.4, max_area_lead=None)
    assert off.covers(0.55, unknown_share=0.0, area_lead=0.9)


@pytest.mark.parametrize("question", ["Is the relevant policy online?", "Where is the updated policy?", "Is there an SM policy?"])
def test_describing_words_are_not_policy_names(question):
    assert other_policy_named(question, TITLES, Synonyms.load()) is None


def test_the_schools_own_name_is_taken_out_as_a_phrase():
    assert without_school_name("Is there a way to post at Pennine Way?", "Pennine Way Primary School") == "Is there a way to post at ?"
    assert without_school_name("Can I tag St Mary’s on Facebook?", "St Mary's Catholic School") == "Can I tag St on Facebook?"
    named = "What does the Kingsmead policy say about WhatsApp?"
    assert other_policy_named(without_school_name(named, "Kingsmead School"), TITLES, Synonyms.load()) is None


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What time does the school day start?", "time"),
        ("Hi, how many accounts can the school have?", "count"),
        ("How often is this policy reviewed?", "frequency"),
        ("When are the school holidays this year?", "date"),
        ("When would the school start monitoring my messages?", None),  # a condition, not a date
        ("I don't know how many parents saw it, what do I do?", None),  # asks no count
        ("Can I post photos of my class?", None),
    ],
)
def test_the_answer_type_a_question_asks_for(question, kind):
    assert answer_type(question) == kind


def test_a_question_asking_for_a_time_count_or_frequency_needs_a_clause_that_gives_one():
    assert not gives_answer_type("What time does the school day start?", ["Staff must not use social media during working hours."])
    assert gives_answer_type("What time should I stop replying to parents?", ["Staff should not reply after 6pm or at weekends."])
    # a count of the thing asked: "within 24 hours" counts no days of leave, and a clause number counts nothing
    assert not gives_answer_type("How many days of annual leave do I get?", ["Concerns are investigated within 24 hours."])
    assert not gives_answer_type("How many accounts can we have?", ["6.2 Each account is managed by the office."])
    assert gives_answer_type("How many accounts can we have?", ["The school keeps one official account on each platform."])
    assert gives_answer_type("How many people may post?", ["No more than two members of staff may post."])
    assert not gives_answer_type("How often do parents get a report?", ["Parents will be informed once posted. Approved 2023."])
    assert gives_answer_type("How often is the policy reviewed?", ["This policy will be reviewed annually."])
    assert not gives_answer_type("When are parents' evenings this term?", ["Parents' evenings are not to be discussed online."])
    assert gives_answer_type("When are the INSET days this year?", ["INSET days: 2 September and 6 January."])
    # a question of any other kind passes whatever the clauses say
    assert gives_answer_type("Can I post photos of my class?", ["Nothing relevant."])


def test_settings_thresholds_keep_the_area_check_unless_turned_off_and_mpnet_has_none():
    from bot.core.coverage import CALIBRATED
    from bot.settings import AnswerThresholds

    kept = Coverage(**AnswerThresholds(min_score=0.3, strong_score=0.35).model_dump())
    assert kept.max_area_lead == CALIBRATED["bundled:all-MiniLM-L6-v2"].max_area_lead == 0.15
    off = Coverage(**AnswerThresholds(min_score=0.3, strong_score=0.35, max_area_lead=None).model_dump())
    assert off.max_area_lead is None and off.covers(0.34, 0.0, area_lead=5.0)
    assert CALIBRATED["packaged:all-mpnet-base-v2"].max_area_lead is None
    with pytest.raises(ValueError, match="area_overruled_from below min_score"):
        AnswerThresholds(min_score=0.3, strong_score=0.35, area_overruled_from=0.2)
