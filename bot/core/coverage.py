"""Deciding whether a school's policies answer a question at all.

Saying "the policy does not cover this" when it does sends staff elsewhere;
answering when it does not invents policy. These signals decide:

- the best candidate clause's confidence (`bot.answer.confidence`): a strong match always
  counts, a weak one never does;
- for a middling match, whether the question's own subject is missing from the
  policy (most of its content words, and their synonyms, appear nowhere in it:
  "overtime", "funeral");
- whether the question names a policy the school has not loaded ("what is the
  uniform policy?" asked of a school that has only its social media policy);
- whether the question as a whole is much nearer an area of school life that
  other policies cover ("administering medicines in school", `index/areas.yaml`)
  than to anything in the school's own policies, when no clause matches it surely;
- whether a question that asks for a clock time, a count, a calendar date or a
  frequency ("What time does the school day start?", "How many days of annual
  leave...?", "When are the holidays this year?") has a candidate clause, itself
  a fair match, that gives one at all: a clause on "the school day" that states
  no time does not answer when the day starts (the answer-type check of question
  answering, kept to the types a clause's wording can show).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from index.lexical import STOPWORDS, Synonyms, tokens, words

log = logging.getLogger(__name__)

# "the uniform policy", "our whistleblowing policy", "the school's e-safety policies"
NAMED_POLICY = re.compile(r"\b(?:the|our|your|this|that|a|an)\s+((?:[a-z][\w'/-]*\s+){1,4}?)polic(?:y|ies)\b")
DETERMINERS = frozenset("the our your this that a an".split())
# words of a school's name that say nothing about which school: kept in questions
SCHOOL_WORDS = frozenset(
    """school schools primary secondary high junior infant infants nursery community academy academies trust
    learning college catholic church england ce rc c of the and st saint upper lower middle free federation""".split()
)
# words that do not name a policy: "the school's new policy" names none
NOT_A_NAME = frozenset(
    """school school's schools trust trust's staff current new latest official own whole full relevant updated
    old attached revised draft above same other main sm online this""".split()
)


# Where a question asks for one of these, the answer's type; the patterns a clause giving one contains.
# Only at the start of the question or of one of its sentences: "I don't know how many saw it" asks no count.
_OPENING = r"(?:^|[.?!,;:]\s*)(?:and |so |but |also |hi |hello |please )*"
_NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|dozen"
ANSWER_TYPES = {
    "time": (re.compile(_OPENING + r"(?:what|which|by what|at what) time\b"),
             re.compile(r"\b\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\b\d{1,2}:\d{2}\b|\b(?:noon|midday|midnight|o'clock)\b"
                        r"|\b(?:morning|afternoon|evening|night|weekend|lunch|break)(?:s|time|times)?\b")),
    "count": (re.compile(_OPENING + r"how many\b"), None),  # a count of the thing asked about: `_gives_count`
    # "when" with a calendar ("...this year?", "...this term?"): a date; a plain "when" may ask for a condition
    "date": (re.compile(r"\bwhen\b.*\b(?:this|next) (?:year|term|month|week|half[- ]term)\b|\bwhen\b.*\bdates?\b"),
             re.compile(r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\b"
                        r"|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b|\b(?:19|20)\d\d\b")),
    "frequency": (re.compile(_OPENING + r"how often\b"),
                  re.compile(r"\b(?:annual(?:ly)?|yearly|biennial(?:ly)?|termly|weekly|daily|monthly|fortnightly|hourly|every|regular(?:ly)?"
                             r"|periodic(?:ally)?|routine(?:ly)?|frequent(?:ly)?|always|never|review(?:ed|s)?|(?:once|twice|times) (?:a|per|each|every))\b"
                             r"|\b(?:each|per|a|one) (?:year|term|week|month|day)\b")),
}
_NUMBER = re.compile(r"(?!(?:19|20)\d\d$)\d{1,3}|" + _NUMBER_WORDS + r"|several|single")  # one word: words() splits
_LIMIT = re.compile(r"\b(?:no more than|not more than|at least|at most|up to|maximum|minimum|limit(?:ed)? (?:of|to))\b")
# a clause's own number ("6.2 Staff must...") states no count
_CLAUSE_NUMBER = re.compile(r"^\s*\(?\d+(?:\.\d+)*[.)]?\s", re.MULTILINE)


def answer_type(question: str) -> str | None:
    """The kind of answer the question asks for, when it is a time, a count, a date or a frequency."""
    text = _plain(question)
    return next((kind for kind, (asks, _) in ANSWER_TYPES.items() if asks.search(text)), None)


def gives_answer_type(question: str, clauses: Iterable[str]) -> bool:
    """Whether any of the clauses could answer the question, when it asks for a time, a count, a date or a
    frequency (always, when it asks for none)."""
    kind = answer_type(question)
    if kind is None:
        return True
    texts = [_CLAUSE_NUMBER.sub(" ", clause.lower()) for clause in clauses]
    if kind == "count":
        counted = _counted(question)
        return any(_gives_count(counted, text) for text in texts)
    return any(ANSWER_TYPES[kind][1].search(text) for text in texts)


def _plain(text: str) -> str:
    return text.replace("’", "'").lower().strip()


def _counted(question: str) -> set[str]:
    """The stems of the words after "how many": "how many days of annual leave" counts days (of annual leave)."""
    after = re.split(r"\bhow many\b", _plain(question), maxsplit=1)[-1]
    return set(tokens(" ".join(words(after)[:3])))


def _gives_count(counted: set[str], clause: str) -> bool:
    """A number just before a word of the thing counted ("one official account", "2 members of staff" for
    members), or a limit stated in words ("no more than", "a maximum of"). A clause's "within 24 hours"
    gives no count of days of leave."""
    if _LIMIT.search(clause):
        return True
    found = words(clause)
    for position, word in enumerate(found):
        if _NUMBER.fullmatch(word) and counted & set(tokens(" ".join(found[position + 1: position + 4]))):
            return True
    return False


@dataclass(frozen=True)
class Coverage:
    min_score: float = 0.315
    strong_score: float = 0.36
    max_unknown_share: float = 0.40
    # A question this much nearer an area of school life (index/areas.yaml) than to any passage of the school's
    # policies is about that area ("giving medicine to pupils"), unless a clause matches it this surely.
    # None: no area check.
    max_area_lead: float | None = 0.15
    area_overruled_from: float = 0.45

    def covers(self, best_score: float, unknown_share: float, area_lead: float = float("-inf")) -> bool:
        if self.max_area_lead is not None and area_lead > self.max_area_lead and best_score < self.area_overruled_from:
            return False
        if best_score >= self.strong_score:
            return True
        return best_score >= self.min_score and unknown_share < self.max_unknown_share


# A clause's score means something different under each embedding model, so the thresholds are
# calibrated per model on the development and holdout question sets (never the blind ones): the
# strictest thresholds that keep those sets' answered hits and leave no unanswerable question answered.
CALIBRATED = {
    "bundled:all-MiniLM-L6-v2": Coverage(),
    "packaged:all-mpnet-base-v2": Coverage(min_score=0.325, strong_score=0.405, max_area_lead=None),
}


def coverage_for(model_name: str, override: Coverage | None = None) -> Coverage:
    """The thresholds to use with an embedding model: the settings' own, else the calibrated ones."""
    if override is not None:
        if model_name in CALIBRATED and override != CALIBRATED[model_name]:
            log.warning("answer_thresholds in the settings replace the thresholds calibrated for %s", model_name)
        return override
    if model_name not in CALIBRATED:
        log.warning(
            "answer thresholds are not calibrated for model %s; using the bundled model's. "
            "Check them with `policybot eval` and set `answer_thresholds` in the settings file.", model_name,
        )
    return CALIBRATED.get(model_name, Coverage())


def other_policy_named(question: str, titles: Iterable[str], synonyms: Synonyms) -> str | None:
    """The name of a policy the question asks about that is none of `titles`, if it names one.

    A name matches a title when they share a content word or a synonym group
    ("e-safety policy" and "Online Safety Policy" do not; "social networking
    policy" and "Social Media Policy" do).
    """
    known = set(tokens(" ".join(titles)))
    for group in synonyms.stemmed_groups():
        if group & known:
            known |= group
    text = re.sub(r"[^\w'/-]+", " ", question.replace("’", "'").lower())
    for match in NAMED_POLICY.finditer(text):
        name = _name_before_policy(match.group(1).split())
        named = set(tokens(" ".join(name)))
        if named and not named & known:
            return " ".join(name)
    return None


def _name_before_policy(candidate: list[str]) -> list[str]:
    """The words naming the policy: those after the last determiner, when none is a function word.

    "a breach of the policy" and "a colleague is breaking the policy" name no policy.
    """
    last = max((i for i, w in enumerate(candidate) if w in DETERMINERS), default=-1)
    name = candidate[last + 1 :]
    if any(w in STOPWORDS for w in name if w not in NOT_A_NAME):
        return []
    return [w for w in name if w not in NOT_A_NAME]


def without_school_name(question: str, school_name: str) -> str:
    """The question with the asking school's own name taken out ("...I teach at Kingsmead...").

    Search is already limited to that school, so its name tells retrieval nothing,
    yet it pulls up every clause that happens to mention the school by name.
    """
    runs, run = [], []
    for word in words(school_name) + [""]:  # runs of distinctive words: "mill lane", "windmill", "pennine way"
        if word and word not in SCHOOL_WORDS and word not in STOPWORDS and len(word) > 1:
            run.append(word)
        elif run:
            runs.append(r"\s+".join(map(re.escape, run)))
            run = []
    if not runs:
        return question
    question = question.replace("’", "'")
    stripped = re.sub(r"\b(" + "|".join(runs) + r")('s)?\b", " ", question, flags=re.IGNORECASE)
    stripped = re.sub(r"\s{2,}", " ", stripped).strip()
    return stripped or question
