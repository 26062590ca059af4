"""The safeguarding gate: does a message raise a concern about a child, or about an adult's conduct?

Two signals, both driven by `bot/safeguarding.yaml` so a DSL can extend them
without code:

- meaning: each window of the message is embedded with the bundled model and
  compared with the concern examples of every category and with the
  'not a concern' examples; a concern wins when it is close enough and clearly
  closer than any ordinary question;
- learned boundary: a logistic regression fitted at start-up on the same
  examples (concerns against ordinary questions); a message that names a
  specific child or an adult who works with children and that it rates a likely
  concern escalates even when no single example is near enough;
- rules: a reference to a specific child ('a Year 9', 'my tutee', '17-year-old')
  together with a category's terms, or an adult who works with children followed
  by a conduct term; question framing about policy, training or resources is a
  counter-signal.

Long messages are assessed in windows; the message escalates if any window does.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from bot.answer import Assessment
from index.embed import Embedder
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("safeguarding.yaml")
# "Supply TA here." / "Cover supervisor here -": the staff member introducing themselves at the start of a sentence
SPEAKER = re.compile(r"\s*([\w-]+\s+){0,2}here\s*([.,:;!?\u2013\u2014-]|$)", re.IGNORECASE)


def _sentence_start(words: int) -> re.Pattern:
    """The text before a match is the start of a sentence and at most `words` words."""
    return re.compile(rf"(^|[.!?]\s+)\W*([\w'-]+\s+){{0,{words}}}$")


SENTENCE_START = _sentence_start(2)
VOCATIVE = re.compile(r"\b(hey|hi|hiya|hello|thanks|thank you|cheers|morning|night|yes|no|ok|okay|love you)[\s,!]+$", re.IGNORECASE)
SPEAKER_BEFORE = re.compile(r"(^|[.!?]\s+)\W*(i'?m|i am|i work as|as)\s+(an?\s+|the\s+)?(\w+\s+)?$", re.IGNORECASE)
# "noah told his keyworker daddy threw the telly": the adult a child told, followed by what they said about
# someone else, is the listener, not the subject ("told his coach he doesn't want to go to his house" is not)
LISTENER = re.compile(r"\b(told|tells|telling|said to|disclosed to|confided in|asked|showed)\s+(his|her|their|the|a|an|my|our)?\s*$", re.IGNORECASE)
TOLD_ABOUT = re.compile(r"\W*((that|about|whether|if|why)\s+(\w+\W+){0,4}?)?((his|her|their|my)\s+)?(mum|mummy|mom|dad|daddy|stepdad|step-dad|stepmum|step-mum|uncle|aunt\w*|"
                        r"brother|sister|cousin|grandad|grandma|nan|nana|granny|boyfriend|girlfriend|partner|neighbour|someone|a man|a woman|older)\b",
                        re.IGNORECASE)
# "A dinner lady overheard a Year 3 boy say...": an adult who opens the sentence with a disclosure they overheard,
# or a concern they passed on, is reporting it, not its subject. Witnessing verbs alone ("saw", "found", "noticed")
# do not count: "the caretaker saw the girls changing and filmed them" is about the caretaker.
REPORTER_AFTER = re.compile(r"\s+(just\s+|also\s+|has\s+|had\s+)?((over)?heard\s+([\w'-]+\s+){1,5}?(say|says|said|saying|tell|telling|told|talking|talk|"
                            r"ask|asking|asked|boast\w*|brag\w*|whisper\w*|mention\w*|that)|reported|flagged|passed on)\b", re.IGNORECASE)
REPORTER_BEFORE = _sentence_start(3)  # "One of our lunchtime supervisors overheard..."
# "...and then he locked the door", "...so he drove her home": the reporting adult's own conduct after it, in the same
# sentence ("and she is scared to go home" is usually the child, so a bare "and she" does not count)
THEN_THEY = re.compile(r"^[^.!?]*?\b(then\s+(he|she)|so\s+(he|she)\s+(drove|took|gave|hugged|kissed|touched|locked|shut|kept|made|grabbed|"
                       r"pulled|bought|sent|messaged|followed))\b", re.IGNORECASE)
# "...can the coach give them a lift?": the adult is the subject of a question about practice, not of a statement
QUESTION_BEFORE = re.compile(r"(^|[,.;:!?]\s*|\b(and|but|so|or)\s+)\W*(can|could|should|may|must|do|does|will|would|is it (ok|okay|alright|fine|acceptable) (for|if|that))\s+"
                             r"(a|an|the|our|my|any|staff|one of the)?\s*$", re.IGNORECASE)
# "...trip forms? also, jayden had a round burn...": the staff member marks a new item, so it is judged as a message of its own
TOPIC_SWITCH = re.compile(r"^\W*(also|and also|oh|btw|by the way|fyi|ps|p\.s\.|unrelated|on another note|separately|"
                          r"another thing|one more thing|while i'?m here)\b", re.IGNORECASE)
# "...sent me a friend request and told me her stepdad hurts her, can I accept it?": a closing question after a comma,
# and before it an account of what someone said
QUESTION_TAIL = re.compile(r",\s*(?:(?:and|so|but|or)\s+)?(?:can|could|should|shall|may|must|do|does|did|am|is|are|was|what|how|"
                           r"who|where|when|which|would|will)\b[^,]*\?\s*$", re.IGNORECASE)
RELAYED = re.compile(r"\b(?:told|tells|said|says|disclosed|discloses|confided|confides|mentioned|admitted|let slip)\b", re.IGNORECASE)
# "can the coach give her a lift?" asks about one child: a question's framing does not excuse it
PERSONAL = re.compile(r"\b(she|her|he|him)\b", re.IGNORECASE)
ROUTES = ("dsl", "staff-allegation")


class SafeguardingDataError(PolicyBotError):
    pass


@dataclass(frozen=True)
class Category:
    name: str
    route: str
    examples: tuple[str, ...]
    terms: tuple[re.Pattern, ...]
    subjects: tuple[re.Pattern, ...] = ()  # staff-allegation: who the conduct is by


@dataclass(frozen=True)
class Rules:
    categories: tuple[Category, ...]
    not_a_concern: tuple[str, ...]
    child_reference: tuple[re.Pattern, ...]
    policy_framing: tuple[re.Pattern, ...]
    head_terms: tuple[re.Pattern, ...]
    adult_reference: tuple[re.Pattern, ...] = ()


@dataclass(frozen=True)
class Thresholds:
    min_similarity: float = 0.42  # nearest concern example at least this close
    margin: float = 0.12  # ...and this much closer than the nearest ordinary question
    framed_margin: float = 0.20  # margin needed when framed as a policy question with no specific child
    rule_min_similarity: float = 0.30  # a rule hit still needs the message to be near some concern
    loose_similarity: float = 0.36  # or at least this close...
    loose_margin: float = 0.14  # ...and this much closer than any ordinary question
    sentence_min_similarity: float = 0.50  # the same for one sentence judged apart from its message
    learned_probability: float = 0.70  # the learned boundary's concern probability, with a specific child or adult
    sentence_learned_probability: float = 0.80  # the same for one sentence judged apart from its message
    rule_veto: float = 0.10  # ...and not be this much nearer an ordinary question than any concern
    also_within: float = 0.04  # further categories within this of the best one
    max_categories: int = 3
    window_chars: int = 400


def _compile(patterns, where: str) -> tuple[re.Pattern, ...]:
    out = []
    for pattern in patterns or ():
        try:
            out.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise SafeguardingDataError(f"{where}: pattern {pattern!r} is not a valid regular expression ({exc}); fix it in the YAML.") from None
    return tuple(out)


def load_rules(path: str | Path | None = None) -> Rules:
    """Read the examples and patterns; errors name the file and the entry to fix."""
    path = Path(path or DATA)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SafeguardingDataError(f"Cannot read safeguarding data {path}: {exc}") from None
    categories = []
    for name, spec in (raw.get("categories") or {}).items():
        route = spec.get("route")
        if route not in ROUTES:
            raise SafeguardingDataError(f"{path}: category {name!r} needs route: dsl or staff-allegation")
        examples = tuple(str(e) for e in spec.get("examples") or ())
        if not examples:
            raise SafeguardingDataError(f"{path}: category {name!r} needs at least one example")
        categories.append(Category(name, route, examples, _compile(spec.get("terms"), f"{path} {name}"),
                                   _compile(spec.get("subjects"), f"{path} {name}")))
    if not categories:
        raise SafeguardingDataError(f"{path}: no categories")
    return Rules(
        categories=tuple(categories),
        not_a_concern=tuple(str(e) for e in raw.get("not_a_concern") or ()),
        child_reference=_compile(raw.get("child_reference"), f"{path} child_reference"),
        policy_framing=_compile(raw.get("policy_framing"), f"{path} policy_framing"),
        head_terms=_compile(raw.get("head_terms"), f"{path} head_terms"),
        adult_reference=_compile(raw.get("adult_reference"), f"{path} adult_reference"),
    )


def windows(text: str, size: int = 400) -> list[str]:
    """Sentence-packed windows of at most `size` characters (long sentences are cut with overlap)."""
    text = re.sub(r"[ \t\r\f\v]+", " ", text).strip()
    if len(text) <= size:
        return [text] if text else []
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        sentence = sentence.strip()
        while len(sentence) > size:
            cut = sentence.rfind(" ", size // 2, size)
            cut = cut if cut > 0 else size
            pieces.append(sentence[:cut])
            sentence = sentence[max(cut - size // 4, 1):].strip()  # overlap so a phrase on the cut is seen whole
        if sentence:
            pieces.append(sentence)
    out, current = [], ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > size:
            out.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        out.append(current)
    return out


def sentences(text: str) -> list[str]:
    """The sentences of a window, when it has more than one."""
    found = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+|\s+-\s+", text) if s.strip()]
    return found if len(found) > 1 else []


def relayed_before_question(sentence: str) -> str | None:
    """What a sentence relays before its closing question ("...told me X, can I accept it?" -> "...told me X"),
    or None when it has no closing question or relays nothing."""
    tail = QUESTION_TAIL.search(sentence)
    head = sentence[: tail.start()].strip() if tail else ""
    return head if RELAYED.search(head) else None


def normalise(text: str) -> str:
    """Spell out common school shorthand so patterns and the model see one form."""
    text = re.sub(r"\b(yr|y)\s?(\d{1,2})\b", r"Year \2", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(\d{1,2})\s?(yo|y/o|yrs? old)\b", r"\1-year-old", text, flags=re.IGNORECASE)
    return text.replace("’", "'")


@dataclass(frozen=True)
class WindowVerdict:
    escalate: bool
    route: str | None = None
    picked: tuple[tuple[str, str], ...] = ()  # (category, reason)
    about_head: bool = False
    strength: float = 0.0


@dataclass
class SafeguardingDetector:
    """Implements `SafeguardingGate`: `assess(text)` and `guidance(assessment)`."""

    embedder: Embedder
    rules: Rules = field(default_factory=load_rules)
    thresholds: Thresholds = Thresholds()

    @cached_property
    def _example_matrix(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Every concern example embedded once: (vectors, category index per row, texts)."""
        texts, owners = [], []
        for i, category in enumerate(self.rules.categories):
            texts.extend(category.examples)
            owners.extend([i] * len(category.examples))
        log.info("embedding %d concern examples and %d ordinary examples", len(texts), len(self.rules.not_a_concern))
        return self.embedder.embed(texts), np.array(owners), texts

    @cached_property
    def _ordinary_matrix(self) -> np.ndarray:
        return self.embedder.embed(list(self.rules.not_a_concern) or ["what does the policy say"])

    @cached_property
    def _boundary(self):
        """Logistic regression over the embedded examples: concern (any category) against ordinary question."""
        from sklearn.linear_model import LogisticRegression

        concerns, _, _ = self._example_matrix
        ordinary = self._ordinary_matrix
        x, y = np.vstack([concerns, ordinary]), np.r_[np.ones(len(concerns)), np.zeros(len(ordinary))]
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(x, y)

    def assess(self, text: str) -> Assessment:
        """The verdict on one message of any length; it escalates if any window does."""
        parts = windows(normalise(text or ""), self.thresholds.window_chars)
        if not parts:
            return Assessment(escalate=False)
        # a concern buried among other business ("...trip forms. Also, she said... And can the coach...")
        # is judged on its own sentence too, so the rest of the message does not dilute it
        parts = list(dict.fromkeys(parts))
        alone = [s for part in parts for s in sentences(part) if len(s) >= 20 and s not in parts]
        # the account a policy question relays ("...told me her stepdad hurts her, can I accept it?") is judged
        # without the question, whose framing and meaning would otherwise outweigh it
        relayed = {head for s in parts + alone for head in [relayed_before_question(s)] if head and len(head) >= 20}
        relayed -= set(parts + alone)
        texts = list(dict.fromkeys(parts + alone + sorted(relayed)))
        vectors = self.embedder.embed(texts)
        # a sentence on its own has less context, so it needs a closer match by meaning than a whole window
        verdicts = [self._window(text, vector, sentence=i >= len(parts) and not TOPIC_SWITCH.match(text), relayed=text in relayed)
                    for i, (text, vector) in enumerate(zip(texts, vectors))]
        raised = [v for v in verdicts if v.escalate]
        if not raised:
            return Assessment(escalate=False)
        route = "staff-allegation" if any(v.route == "staff-allegation" for v in raised) else "dsl"
        picked: dict[str, str] = {}
        for verdict in sorted((v for v in raised if v.route == route), key=lambda v: -v.strength):
            for name, reason in verdict.picked:
                picked.setdefault(name, reason)
        picked = dict(list(picked.items())[: self.thresholds.max_categories])
        about_head = route == "staff-allegation" and any(v.about_head for v in raised)
        return Assessment(escalate=True, route=route, categories=tuple(picked), reasons=tuple(picked.values()),
                          about_head=about_head)

    def guidance(self, assessment: Assessment) -> str:
        from bot.guidance import staff_guidance

        return staff_guidance(assessment)

    def _window(self, text: str, vector: np.ndarray, sentence: bool = False, relayed: bool = False) -> WindowVerdict:
        t, rules = self.thresholds, self.rules
        matrix, owners, examples = self._example_matrix
        sims = matrix @ vector
        ordinary = float((self._ordinary_matrix @ vector).max())
        best: dict[int, tuple[float, int]] = {}
        for row, owner in enumerate(owners):
            if owner not in best or sims[row] > best[owner][0]:
                best[owner] = (float(sims[row]), row)
        top = max(s for s, _ in best.values())
        # "a girl who left last year, now 19" is an adult: child rules do not apply
        child = any(p.search(text) for p in rules.child_reference) and not any(p.search(text) for p in rules.adult_reference)
        framed = _framed(text, rules) and not child
        terms = {i: _hits(c.terms, text) for i, c in enumerate(rules.categories)}
        staff_index = [i for i, c in enumerate(rules.categories) if c.route == "staff-allegation"]
        # an adult who works with children (not the speaker or a listener); their conduct; asked about in a question?
        has_subject, staff_hit, asked = self._staff(text)
        need = t.framed_margin if framed else t.margin
        by_meaning = top >= (t.sentence_min_similarity if sentence else t.min_similarity) and top - ordinary >= need
        # a looser match still counts when it names a specific child or an adult who works with children
        # and is far nearer a concern than any ordinary question
        by_meaning = by_meaning or (not sentence and not framed and (child or has_subject)
                                    and top >= t.loose_similarity and top - ordinary >= t.loose_margin)
        # the boundary learned from all the examples generalises past the single nearest one
        learned = 0.0
        if not by_meaning and (child or has_subject) and not relayed:  # a relayed account is judged by the rules only
            learned = float(self._boundary.predict_proba(vector[None, :])[0, 1])
        by_learned = learned >= (t.sentence_learned_probability if sentence else t.learned_probability)
        near_concern = by_meaning or by_learned
        # a rule hit stands unless the message reads clearly more like an ordinary question than any concern
        vetoed = ordinary - top > t.rule_veto
        by_rule = (child and any(terms[i] for i, c in enumerate(rules.categories) if c.route == "dsl")
                   and top >= t.rule_min_similarity and not _framed(text, rules, strict=True) and not vetoed)
        # an allegation may end "am I allowed to report it?": only a message that opens as a question about
        # policy or practice, with no child or pronoun for one, excuses an adult's conduct
        staff_framed = (asked or _framed(text, rules, at_start=True)) and not child and not PERSONAL.search(text)
        by_staff = staff_hit is not None and top >= t.rule_min_similarity and not staff_framed and not vetoed
        if relayed:
            # an account cut from its policy question: its words must point to a concern beyond the contact asked
            # about ("a Year 10 sent me a friend request" alone raises nothing), and nothing else decides
            kinds = sum(bool(terms[i]) for i, c in enumerate(rules.categories) if c.route == "dsl")
            near_concern, by_staff = False, False
            by_rule = by_rule and kinds >= 2
        if not (near_concern or by_rule or by_staff):
            return WindowVerdict(False)
        dsl_best = max((best[i][0] for i, c in enumerate(rules.categories) if c.route == "dsl"), default=0.0)
        staff_best = max((best[i][0] for i in staff_index), default=0.0)
        learned_note = f"; learned concern probability {learned:.2f}" if by_learned else ""
        if by_staff or (has_subject and staff_best > dsl_best and near_concern):
            i = staff_index[0]
            reason = (f"adult and conduct terms: {staff_hit}" if staff_hit
                      else f"matched example: '{examples[best[i][1]]}' ({best[i][0]:.2f}){learned_note}")
            about_head = any(p.search(text) for p in rules.head_terms)
            return WindowVerdict(True, "staff-allegation", ((rules.categories[i].name, reason),), about_head, top)
        picked = []
        ranked = sorted((i for i, c in enumerate(rules.categories) if c.route == "dsl"), key=lambda i: -best[i][0])
        for i in ranked:
            score, row = best[i]
            near = near_concern and score >= dsl_best - t.also_within  # the best category always, and any close behind it
            hit = child and terms[i]
            if near:
                terms_note = f"; terms: {', '.join(hit)}" if hit else ""
                picked.append((rules.categories[i].name, f"matched example: '{examples[row]}' ({score:.2f}){learned_note}{terms_note}"))
            elif hit:
                picked.append((rules.categories[i].name, f"specific child and terms: {', '.join(hit)}"))
        picked.sort(key=lambda p: 0 if "matched example" in p[1] and "terms" in p[1] else 1)
        return WindowVerdict(True, "dsl", tuple(picked[: t.max_categories]), False, top)

    def _staff_subjects(self, text: str):
        """Each (category, match) naming an adult who works with children as the one the message is about."""
        for category in self.rules.categories:
            if category.route != "staff-allegation":
                continue
            for subject in category.subjects:
                for m in subject.finditer(text):
                    before, after = text[: m.start()], text[m.end():]
                    introducing = SENTENCE_START.search(before) and SPEAKER.match(after)
                    listening = LISTENER.search(before) and TOLD_ABOUT.match(after)
                    reporting = REPORTER_BEFORE.search(before) and REPORTER_AFTER.match(after) and not THEN_THEY.match(after)
                    if introducing or SPEAKER_BEFORE.search(before) or VOCATIVE.search(before) or listening or reporting:
                        continue  # "Supply TA here", "as a teacher": the staff member; "hey miss": a pupil addressing them;
                        # "told his TA daddy...": the listener; "a dinner lady overheard...": the one reporting it
                    yield category, m

    def _staff(self, text: str) -> tuple[bool, str | None, bool]:
        """In one pass: is an adult who works with children the subject; '<that adult> ... <conduct>' within a short
        span (the words matched, or None); and is that adult asked about in a question ("can the coach give them a lift?")."""
        subject = False
        for category, m in self._staff_subjects(text):
            subject = True
            conduct = _hits(category.terms, text[m.end(): m.end() + 120])
            if conduct:
                return True, f"{m.group(0).lower()}, {', '.join(conduct)}", bool(QUESTION_BEFORE.search(text[: m.start()]))
        return subject, None, False


def _hits(patterns: tuple[re.Pattern, ...], text: str) -> list[str]:
    found = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            word = m.group(0).lower().strip()
            if word not in found:
                found.append(word)
    return found[:4]


def _framed(text: str, rules: Rules, strict: bool = False, at_start: bool = False) -> bool:
    """A question about policy, training, resources, places or dates; strict needs both a question opener and such a noun;
    at_start needs the message to open with the question ("Can a TA...?", not "...a TA did X, am I allowed to report it?")."""
    if at_start:
        return bool(rules.policy_framing and rules.policy_framing[0].match(text))
    opener = bool(rules.policy_framing and rules.policy_framing[0].search(text))
    noun = any(p.search(text) for p in rules.policy_framing[1:])
    return (opener and noun) if strict else (opener or noun)
