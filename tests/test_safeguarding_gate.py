"""The learned safeguarding gate with its real model: what it raises, where it sends it, and how a DSL extends it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bot.safeguarding.examples import SHIPPED, ExamplesError, load_examples, read_case_file
from bot.safeguarding.gate import SafeguardingGate, windows
from bot.safeguarding.guidance import guidance

pytestmark = pytest.mark.model


@pytest.mark.parametrize("text, recipient", [
    ("a Year 9 told me her stepdad hits her when he's been drinking", "dsl"),
    ("Kayden in Y10 has two new phones and older lads on mopeds pick him up from the gate every day", "dsl"),
    ("our new coach gives one Year 8 girl lifts home and has her saved in his phone with a heart emoji", "head"),
    ("the minibus driver keeps messaging a Y7 on snapchat late at night and told her not to tell her mum", "head"),
    ("our headteacher has a private WhatsApp chat with a Year 10 boy and told him to keep it between them", "chair"),
    ("the head, who is also our DSL, keeps following Year 11 girls on insta from his personal account", "chair"),
])
def test_clear_concerns_go_to_the_person_they_are_for(gate, text, recipient):
    verdict = gate.assess(text)
    assert verdict.escalate, verdict
    assert verdict.recipient == recipient
    assert verdict.categories and len(verdict.reasons) == len(verdict.categories)


@pytest.mark.parametrize("text", [
    "can I accept a friend request from an ex-pupil who is now 24?",
    "when is the next grooming awareness training for staff?",
    "who is the DSL at Kingsmead?",
    "a parent keeps posting nasty comments about me on the school facebook page, what can I do?",
    "can I post photos of my class on my own Instagram?",
])
def test_ordinary_questions_are_not_raised(gate, text):
    assert not gate.assess(text).escalate


def test_text_with_no_words_in_it_is_no_concern(gate):
    """Random strings were forwarded as concerns (154 of 200) until generated ones were fitted as "no concern";
    these come from another seed than the fitted ones."""
    from bot.safeguarding.noise import SEED, noise_texts

    raised = [t for t in noise_texts(200, seed=SEED + 1) if gate.assess(t).escalate]
    assert raised == []
    assert gate.assess("a Y8 told me her stepdad hits her ????? !!!! asdfgh").escalate  # mash around words still counts


def test_a_colleague_addressed_first_is_not_the_subject(gate):
    # the Slack adapter drops a leading @-mention before the gate; what remains is about the child
    verdict = gate.assess("a year 9 girl told me her stepdad hits her when he's been drinking")
    assert verdict.escalate and verdict.recipient == "dsl"


def test_a_concern_buried_in_a_long_message_is_found_in_its_window(gate):
    business = ("Quick one about the Year 6 residential: the coach leaves at 8.15 from the front gate, packed lunches are "
                "ordered, the risk assessment is on the shared drive and the parents' letter went out on Friday. ") * 4
    text = business + "Also Maisie told me at break that her mum's boyfriend locks her in her room and hits her with a belt."
    assert len(text) > 800 and len(windows(text)) > 1
    verdict = gate.assess(text)
    assert verdict.escalate and verdict.recipient == "dsl"
    assert not gate.assess(business).escalate


def test_the_gate_reads_a_vector_only_from_its_own_model(gate, gate_embedder, embedder):
    """A vector retrieval already has is reused for the model that made it, never read as the other model's."""
    text = "a Y8 sent me a pic of herself in her underwear on snap, do I delete it?"
    alone = gate.assess(text)
    assert alone.escalate
    assert gate.assess(text, gate_embedder.embed([text])[0], gate_embedder.name) == alone
    assert gate.assess(text, embedder.embed([text])[0], embedder.name) == alone


def test_the_shipped_examples_need_no_embedding_at_start_up(gate_embedder, embedder, tmp_path):
    """Their vectors ship with the examples (bot/safeguarding/vectors/): a first start embeds nothing of them."""
    gate = SafeguardingGate(gate_embedder, load_examples([SHIPPED]), tmp_path / "cache", reader=embedder)
    started = time.perf_counter()
    gate.warm()
    assert not list((tmp_path / "cache").glob("*.npz")) or all(p.name.startswith("gate-") for p in (tmp_path / "cache").glob("*.npz"))
    again = SafeguardingGate(gate_embedder, load_examples([SHIPPED]), tmp_path / "cache", reader=embedder)
    refit = time.perf_counter()
    again.warm()  # the fit is cached by the examples and the model
    assert time.perf_counter() - refit < time.perf_counter() - started
    assert list((tmp_path / "cache").glob("gate-*.npz"))


def test_a_dsl_adds_examples_in_a_file_and_the_gate_learns_them(gate_embedder, embedder, tmp_path):
    own = tmp_path / "our-examples"
    own.mkdir()
    (own / "county.yaml").write_text("""
escalate:
  - {q: "a Y9 says men at the car wash on Station Road make him work nights and keep his passport", route: dsl, category: trafficking}
  - {q: "a girl in Y8 says her 'uncle' who is not her uncle brought her from abroad and she cleans his house all day", route: dsl, category: trafficking}
  - {q: "a boy said he owes a man money for bringing him to the UK and has to work it off at a nail bar", route: dsl, category: trafficking}
  - {q: "Year 10 lad says he was brought here in a lorry and the people he lives with keep his documents", route: dsl, category: trafficking}
  - {q: "a pupil says the family she lives with are not her family and she is not allowed out or to keep her wages", route: dsl, category: trafficking}
  - {q: "a Y11 works in a takeaway till 2am every night, says the owner brought him over and he can't leave", route: dsl, category: trafficking}
no_escalate:
  - {q: "is there a modern slavery awareness session in the next inset day?"}
""", encoding="utf-8")
    gate = SafeguardingGate(gate_embedder, load_examples([SHIPPED, own]), tmp_path / "cache", reader=embedder)
    verdict = gate.assess("a Y7 told me the man she lives with brought her over from abroad and takes all the money she earns cleaning")
    assert verdict.escalate and verdict.categories[0] == "trafficking"


def test_a_broken_examples_file_names_the_file_and_the_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("escalate:\n  - {q: \"a child told me something\", route: somewhere}\nno_escalate: []\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match=r"bad.yaml: escalate entry 1: `route:` must be dsl"):
        read_case_file(bad)
    (tmp_path / "unreadable.yaml").write_text("escalate: [unclosed\n", encoding="utf-8")
    with pytest.raises(ExamplesError, match="unreadable.yaml: cannot read it"):
        read_case_file(tmp_path / "unreadable.yaml")
    with pytest.raises(ExamplesError, match="No safeguarding examples folder"):
        load_examples([tmp_path / "missing"])


def test_guidance_has_the_category_lines_only_where_relevant():
    assert any("FGM" in line for line in guidance("dsl", ("fgm",)))
    assert not any("FGM" in line for line in guidance("dsl", ("neglect",)))
    assert any("nude" in line for line in guidance("dsl", ("nudes-sharing",)))
    staff = guidance("head", ("staff-conduct",))
    assert any("LADO" in line for line in staff) and any("999" in line for line in staff)
    assert not any("child's own words" in line for line in staff)


def test_every_shipped_example_file_reads_and_covers_every_recipient():
    examples = load_examples([SHIPPED])
    assert {e.recipient for e in examples if e.concern} >= {"dsl", "head", "chair"}
    assert len({e.source for e in examples}) >= 12
    assert sum(e.concern for e in examples) > 1000 and sum(not e.concern for e in examples) > 1000
    assert np.mean([len(e.text) for e in examples]) > 40


def test_the_route_reads_the_answer_model_too_and_the_running_bot_wires_it(gate, gate_embedder, embedder, tmp_path):
    """Whether it is a concern: the gate's own vector; who it is about: both vectors side by side. The bot's runtime
    hands the gate its answer model (a gate left without it would route on its own vector alone)."""
    from bot.runtime import Runtime
    from bot.settings import load_settings

    heads = gate._heads
    assert heads.concern_w.shape[0] == gate_embedder.dimension
    assert heads.recipient_w.shape[1] == gate_embedder.dimension + embedder.dimension
    runtime = Runtime(load_settings(data_dir=tmp_path))
    assert runtime.gate.reader is runtime.embedder
