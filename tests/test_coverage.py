"""Which policy a question names, and whether a match is good enough to answer from."""

from __future__ import annotations

import pytest

from bot.coverage import Coverage, other_policy_named, without_school_name
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


@pytest.mark.parametrize("question", ["Is the relevant policy online?", "Where is the updated policy?", "Is there an SM policy?"])
def test_describing_words_are_not_policy_names(question):
    assert other_policy_named(question, TITLES, Synonyms.load()) is None


def test_the_schools_own_name_is_taken_out_as_a_phrase():
    assert without_school_name("Is there a way to post at Pennine Way?", "Pennine Way Primary School") == "Is there a way to post at ?"
    assert without_school_name("Can I tag St Mary’s on Facebook?", "St Mary's Catholic School") == "Can I tag St on Facebook?"
    named = "What does the Kingsmead policy say about WhatsApp?"
    assert other_policy_named(without_school_name(named, "Kingsmead School"), TITLES, Synonyms.load()) is None
