"""Staff vocabulary (index/synonyms.yaml): strict synonym groups and looser rewordings."""

from __future__ import annotations

from index.lexical import Synonyms, tokens


def test_a_rewording_joins_the_group_it_shares_a_term_with_and_rewords_only_when_loose():
    synonyms = Synonyms(groups=(("monitor", "monitoring"),), rewordings=(("monitoring", "spy on"), ("circumvent", "get round")))
    vocabulary = frozenset(tokens("we may monitor staff; nobody may circumvent it"))
    assert synonyms.in_vocabulary("Can the school spy on my account?", vocabulary) is None
    assert synonyms.in_vocabulary("Can the school spy on my account?", vocabulary, loose=True) == "can the school monitor my account"
    assert synonyms.in_vocabulary("Can I get round the rules?", vocabulary, loose=True) == "can i circumvent the rules"


def test_a_term_of_stop_words_only_does_not_stop_the_rewording():
    synonyms = Synonyms(groups=(("during school", "working hours", "lesson time"),))
    vocabulary = frozenset(tokens("not permitted during lesson time"))
    assert synonyms.in_vocabulary("Can I post during school?", vocabulary) == "can i post lesson time"


def test_the_shipped_file_loads_with_terms_that_all_have_words():
    synonyms = Synonyms.load()
    assert synonyms.groups and synonyms.rewordings
    empty = [term for group in synonyms.rewordings for term in group if not tokens(term)]
    assert not empty, empty
