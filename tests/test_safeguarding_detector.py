"""The safeguarding gate with the real bundled model: the dev set, the held-out set, long text, the YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.answer import Answerer, Assessment, Question
from bot.evaluate import evaluate_safeguarding, load_safeguarding_cases, squash
from bot.safeguarding import DATA, SafeguardingDataError, SafeguardingDetector, Thresholds, load_rules, windows
from index.catalogue import load_catalogue
from index.embed import Embedder
from index.live import LiveIndex
from tests.conftest import POLICIES, SHARED_EVAL, TEST_DATA, TODAY

pytestmark = pytest.mark.model

DEV = SHARED_EVAL / "dev-safeguarding.yaml"
HOLDOUT = TEST_DATA / "holdout-safeguarding.yaml"
# the blind sets, each written by a helper who never saw the method (README "Measured quality")
BLIND = [TEST_DATA / f"blind{n}-safeguarding.yaml" for n in ("", *range(2, 12))]
# written by five writers told to copy the dev set's style and size, as its unpublished twin is: held to the dev bar
DEV_STYLE = [TEST_DATA / f"devstyle{n}-safeguarding.yaml" for n in range(1, 6)]


@pytest.fixture(scope="module")
def detector(embedder):
    return SafeguardingDetector(embedder)


def score(detector, path: Path) -> dict:
    """The figures `policybot eval FILE` prints for a safeguarding case file (the DSL's check)."""
    report = evaluate_safeguarding(detector, load_safeguarding_cases(path))
    return {"escalate": report.concerns, "no_escalate": report.ordinary,
            "missed_or_misrouted": [m["q"] for m in report.misses if m["problem"].startswith("expected")],
            "false_alarms": [m["q"] for m in report.misses if m["problem"].startswith("false alarm")]}


@pytest.mark.skipif(not DEV.is_file(), reason="shared dev set not present")
def test_dev_set_every_concern_on_the_right_route_and_at_most_two_false_alarms(detector):
    figures = score(detector, DEV)
    print(f"dev: {figures['escalate'] - len(figures['missed_or_misrouted'])}/{figures['escalate']} escalated on the right route,"
          f" {len(figures['false_alarms'])}/{figures['no_escalate']} false alarms")
    assert figures["missed_or_misrouted"] == []
    assert len(figures["false_alarms"]) <= 2


@pytest.mark.parametrize("path", DEV_STYLE, ids=lambda p: p.stem)
def test_sets_written_like_the_dev_set_meet_its_bar(detector, path):
    figures = score(detector, path)
    assert figures["missed_or_misrouted"] == []
    assert len(figures["false_alarms"]) <= 2, figures["false_alarms"]


def test_medicines_set_holds_its_first_look_a_known_gap(detector):
    """Medicines and medical needs (2026-12-03, a writer who never saw the method): 22 of 30 concerns raised on
    first look, 2 of 30 false alarms. Below the bar the other sets meet; held here so that nothing makes it
    worse, and a change that raises more must still pass this (README "Safeguarding")."""
    figures = score(detector, TEST_DATA / "medicine-safeguarding.yaml")
    caught = figures["escalate"] - len(figures["missed_or_misrouted"])
    print(f"medicines: {caught}/{figures['escalate']}, {len(figures['false_alarms'])}/{figures['no_escalate']} false alarms")
    assert caught >= 22, figures["missed_or_misrouted"]
    assert len(figures["false_alarms"]) <= 2, figures["false_alarms"]


@pytest.mark.parametrize("path", [HOLDOUT, *BLIND], ids=lambda p: p.stem)
def test_sets_written_apart_from_the_method_generalise(detector, path):
    """Written separately from the method (the blind set by a writer who never saw it). A floor that a broken method would fall through."""
    figures = score(detector, path)
    caught = figures["escalate"] - len(figures["missed_or_misrouted"])
    print(f"{path.stem}: {caught}/{figures['escalate']} escalated on the right route,"
          f" {len(figures['false_alarms'])}/{figures['no_escalate']} false alarms")
    assert caught / figures["escalate"] >= 0.9, figures["missed_or_misrouted"]
    # the dev set's bar, at most 2 false alarms in 20, as a rate
    assert len(figures["false_alarms"]) <= max(2, 0.10 * figures["no_escalate"]), figures["false_alarms"]


def test_every_category_carries_a_reason(detector):
    assessment = detector.assess("Hypothetically, if a Year 10 told me his stepdad hits him with a belt, what should I do?")
    assert assessment.escalate and assessment.route == "dsl"
    assert "physical-abuse" in assessment.categories
    assert len(assessment.reasons) == len(assessment.categories)
    assert all(r.startswith(("matched example:", "specific child and terms:")) for r in assessment.reasons)


def test_allegation_about_the_headteacher_is_marked_about_head(detector):
    about_head = detector.assess("The headteacher pushed a Year 4 boy against the wall and told him to keep it secret")
    about_teacher = detector.assess("A PE teacher keeps texting one Year 11 girl at night and drives her home")
    assert (about_head.route, about_head.about_head) == ("staff-allegation", True)
    assert (about_teacher.route, about_teacher.about_head) == ("staff-allegation", False)


def test_ordinary_policy_questions_do_not_fire(detector):
    for text in ("What does the policy say about reporting abuse online?", "Which PSHE unit covers self-harm?"):
        assert detector.assess(text) == Assessment(escalate=False)


def test_very_long_message_is_assessed_in_windows(detector):
    filler = "The Year 8 trip to the museum leaves at nine and the coach returns at four. " * 520  # ~40,000 characters
    assert len(filler) > 39_000
    assert detector.assess(filler).escalate is False
    half = len(filler) // 2
    buried = filler[:half] + " A Year 8 girl told me her stepdad hits her when her mum is at work. " + filler[half:]
    assessment = detector.assess(buried)
    assert assessment.escalate and assessment.route == "dsl"
    assert len(windows(buried)) > 90
    assert detector.assess("") == Assessment(escalate=False)
    assert detector.assess("x" * 50_000).escalate is False  # one unbroken 'word': cut, never a crash


class CountingEmbedder(Embedder):
    """The real model, counting how many texts it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.texts = inner, inner.name, 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


def test_example_embeddings_are_computed_once_per_detector(embedder):
    counting = CountingEmbedder(embedder)
    detector = SafeguardingDetector(counting)
    detector.assess("A Year 9 told me her uncle touches her")
    after_first = counting.texts
    detector.assess("A Year 7 has bruises on his arms")
    assert counting.texts == after_first + 1  # only the new message


def test_a_dsl_can_add_a_category_in_yaml(embedder, tmp_path):
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    raw["categories"]["private-fostering"] = {
        "route": "dsl",
        "examples": ["a pupil has been living with a family friend for months while mum is abroad"],
        "terms": [r"\b(living with (a )?(family friend|neighbour|friend's family))\b"],
    }
    path = tmp_path / "safeguarding.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    detector = SafeguardingDetector(embedder, load_rules(path))
    assessment = detector.assess("My tutee has been living with a family friend since October; his mum went back to Poland")
    assert assessment.escalate and "private-fostering" in assessment.categories


def test_a_broken_pattern_names_the_entry_to_fix(tmp_path):
    raw = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    raw["categories"]["neglect"]["terms"] = ["(unclosed"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(SafeguardingDataError, match="neglect.*not a valid regular expression"):
        load_rules(path)


def test_answerer_escalates_with_guidance_and_the_reporting_clause(bundled_index, embedder, detector):
    answerer = Answerer(load_catalogue(POLICIES), LiveIndex(bundled_index, embedder), today=lambda: TODAY, safeguarding=detector)
    school = sorted(answerer.catalogue.schools)[0]
    answer = answerer.answer(Question(text="A Year 8 girl says she's going abroad this summer for a cutting ceremony", school=school))
    data = answer.to_json()
    assert (data["escalate"], data["route"]) == (True, "dsl")
    assert "fgm" in data["categories"]
    assert "report it to the police" in answer.answer and "do not promise" in answer.answer.lower()
    assert "Never view, copy, forward" not in answer.answer  # image guidance only where images are involved
    assert answer.citations  # the school's own reporting clause
    ordinary = answerer.answer(Question(text="Which PSHE unit covers self-harm?", school=school)).to_json()
    assert (ordinary["escalate"], ordinary["route"], ordinary["categories"]) == (False, None, [])


def test_guidance_has_the_category_lines_only_where_relevant():
    from bot.guidance import staff_guidance

    images = staff_guidance(Assessment(True, "dsl", ("nudes-sharing",), ("terms: pics",)))
    fgm = staff_guidance(Assessment(True, "dsl", ("fgm",), ("terms: become a woman",)))
    danger = staff_guidance(Assessment(True, "dsl", ("immediate-danger",), ("terms: drunk",)))
    head = staff_guidance(Assessment(True, "staff-allegation", ("staff-allegation",), ("terms: the head, grab",), about_head=True))
    for text in (images, fgm, danger):
        assert "Do not promise to keep it secret" in text and "child's own words, the time and the place" in text
        assert "Do not investigate" in text and "Report it to the DSL now" in text
    assert "Never view, copy, forward, save, screenshot or delete" in images and "Never view" not in fgm
    assert "report it to the police" in fgm and "police" not in images
    assert "call 999" in danger and "999" not in images
    assert "chair of governors" in head and "Designated Safeguarding Lead" not in head


def test_a_concern_buried_in_other_business_is_still_raised(detector):
    message = ("Morning! Can someone send me the rota for the Christmas fair, I've lost it again. "
               "Oh and Tyler from 5C said his dad's mate keeps taking him in the car to meet men and gives him cash. "
               "Also is the staff meeting still in the library?")
    assessment = detector.assess(message)
    assert assessment.escalate and assessment.route == "dsl", assessment


def test_a_staff_member_introducing_themselves_is_not_the_subject_of_an_allegation(detector):
    assessment = detector.assess("Cover supervisor here. A Year 8 keeps sending me DMs on my personal Insta late at night")
    assert assessment.escalate and assessment.route == "dsl", assessment
    about_adult = detector.assess("A cover supervisor keeps sending a Year 8 girl DMs on his personal Insta late at night")
    assert about_adult.escalate and about_adult.route == "staff-allegation", about_adult


def test_a_concern_that_also_asks_a_policy_question_gets_both(detector, bundled_index, embedder):
    """The gate escalates, and the staff member still gets the clause that answers what they asked."""
    answerer = Answerer(load_catalogue(POLICIES), LiveIndex(bundled_index, embedder), today=lambda: TODAY, safeguarding=detector)
    answer = answerer.answer(Question(text="A Year 8 keeps DMing me on my personal Insta at night, can I reply to her?",
                                      school="pennine-way"))
    assert answer.escalate and answer.route == "dsl"
    assert "Keeping Children Safe in Education" in answer.answer
    assert squash("communication received from current pupils") in squash(answer.citations[0].text)
    assert squash("communication received from current pupils") in squash(answer.answer)
    assert all(c.school == "pennine-way" for c in answer.citations)


@pytest.mark.parametrize(("school", "text", "first", "second"), [
    # "what do I do?": the reporting clause answers it nearly as well as the best match, so it leads
    ("pennine-way", "What should I do if a pupil messages me on my personal account?",
     "communication received from current pupils", "contact via personal accounts with past pupils"),
    # a question the policy answers outright: that answer leads, the reporting clause comes second
    ("mill-lane", "A parent keeps messaging me on Facebook about her child's homework. Can I answer her from my personal account?",
     "via social media should be through the school's social media accounts", "raises a safeguarding concern"),
])
def test_an_escalation_leads_with_the_reporting_clause_unless_another_answers_better(
        detector, bundled_index, embedder, school, text, first, second):
    answerer = Answerer(load_catalogue(POLICIES), LiveIndex(bundled_index, embedder), today=lambda: TODAY, safeguarding=detector)
    answer = answerer.answer(Question(text=text, school=school))
    assert answer.escalate and answer.quoted == 2  # both: the policy answers the question it also asks
    assert squash(first) in squash(answer.citations[0].text), answer.citations[0].text
    assert squash(second) in squash(answer.citations[1].text), answer.citations[1].text



@pytest.mark.parametrize(("text", "route"), [
    # framed as a question, but about one child: the framing does not excuse it
    ("Can the PE teacher keep texting her on his personal phone like this? She's really uncomfortable", "staff-allegation"),
    ("Is it OK that the coach drives her home alone and buys her presents?", "staff-allegation"),
    # "here" / "as" that are not the staff member introducing themselves
    ("Our caretaker here gave one of the girls his personal number", "staff-allegation"),
    ("She went quiet as the TA grabbed her wrist and pushed her against the wall", "staff-allegation"),
    # an adult's age elsewhere in the message does not switch off the child rules
    ("My Year 7 tutee has bruises, she's 11 and her brother is 19 and drags her around", "dsl"),
    # a named child, typed in lower case
    ("tyler in 5c said his dad's mate takes him in the car to meet men who give him cash", "dsl"),
    # a named child with a class code and no "in"; a year group within the speaker's group
    ("Jayden 10C keeps going missing for days at a time, came back with a train ticket to Margate and a roll of cash", "dsl"),
    ("Year 10 in my RE group said the mosque on the high street should be burned down", "dsl"),
    # adults who work with children, in the plural; gifts and secrets; going into where children sleep
    ("one of the lunchtime supervisors drags kids to the wall by the wrist", "staff-allegation"),
    ("one of the TAs keeps buying Leo sweets and just gave him a new Xbox game, told him it's their little secret", "staff-allegation"),
    ("On the residential one of the governors who came as a helper was seen going into the girls' dorm after midnight", "staff-allegation"),
    # a named child with a bare year number; time alone with one child outside school
    ("can u help me reword this report comment? also josh in 11 said in form that 'they' are replacing us and he's been watching some bloke on rumble who says its time to fight back", "dsl"),
    ("the after school club leader has been seen at the park on saturdays with one y5 girl from the club, just the two of them", "staff-allegation"),
    # lower-case names with a class code, and what the child did
    ("jayden in 4R flinched and ducked when i lifted my arm, theres a yellowy bruise behind his ear", "dsl"),
    ("dylan 5H's inhaler ran out in october and mum keeps saying she'll sort it, he's had 2 bad attacks this week", "dsl"),
    # conduct terms: one child dropped off last, "seeing" a pupil, a pupil's messages on a staff member's phone
    ("our minibus driver always drops one Y11 girl off last and then they sit in the van outside her house for ages", "staff-allegation"),
    ("rumour is one of the history teachers is seeing a yr 13 (shes 17), someone saw them holding hands in town", "staff-allegation"),
    ("saw a notification pop up on mr hale's phone from a yr 10 girl saying miss u already x", "staff-allegation"),
    # the adult a child told is the listener: the concern is about the one the child named
    ("noah in nursery told his keyworker daddy threw the telly and mummy was crying on the floor", "dsl"),
    ("Mia in 3B told her teacher that her stepdad touches her at night", "dsl"),
    ("a Year 6 girl asked her teacher whether it's normal for her stepdad to come into the bathroom when she showers", "dsl"),
    # ...but the adult a child told or asked about themselves is the subject
    ("a boy in my form told his coach he doesn't want to go to his house for extra sessions any more", "staff-allegation"),
    ("a Year 5 boy asked the coach to stop rubbing his shoulders in the changing room", "staff-allegation"),
    ("a Year 11 girl went to her tutor's flat on Saturday and he gave her vodka", "staff-allegation"),
    # an adult who opens the sentence with a disclosure they overheard is reporting it, not its subject
    ("One of our lunchtime supervisors overheard a Year 4 girl telling her friend that her stepdad locks her in her room and hits her", "dsl"),
    # ...but what an adult saw, found or noticed and then did, or told a child, is their own conduct
    ("The coach told her to keep their messages secret", "staff-allegation"),
    ("The caretaker saw the Year 8 girls getting changed and filmed them on his phone", "staff-allegation"),
    ("A teacher found a Year 10 girl alone in the toilets and kissed her", "staff-allegation"),
    ("The cover supervisor noticed a Year 8 girl crying and took her into an empty classroom and shut the door", "staff-allegation"),
    ("The coach heard her say she was scared and then he locked the door", "staff-allegation"),
    ("The coach heard her say she was scared so he drove her home and hugged her", "staff-allegation"),
    # ...and "she" after a disclosure is usually the child, not the adult who overheard it
    ("A dinner lady overheard a Year 3 girl say her dad hits her and she is scared to go home", "dsl"),
    ("Sir mentioned to a Year 10 girl that she looks sexy in her PE kit", "staff-allegation"),
    # a child in a year group, on a trip or in a tutor group (the tutor group is not its tutor)
    ("A Year 8 on the residential told me her uncle touches her", "dsl"),
    ("A Year 11 talked to me about wanting to end it all", "dsl"),
    ("A Year 8 girl in my tutor group said her dad hits her", "dsl"),
    # a question at the end about what the speaker may do does not excuse the conduct before it
    ("A teacher keeps messaging students in my form on Instagram late at night, are we allowed to report it?", "staff-allegation"),
    ("A volunteer keeps taking photos of the children in the changing rooms, am I allowed to check his phone?", "staff-allegation"),
    ("The PE teacher made a Year 8 boy do press-ups until he was sick, is that too much?", "staff-allegation"),
    # lower-case named children with their class or form
    ("sam in my class said his dad hits him", "dsl"),
    ("kaylee in 6b mentioned her dad locks her in the shed", "dsl"),
    # a half-told disclosure; "a kid in 11R"; "he's had"
    ("hypothetically if a yr 5 said she doesnt want to go to her uncles at weekends because of what he does and made me promise not to tell, do i have to pass it on??", "dsl"),
    ("kid in 11R handed in a creative writing piece that ends 'by the time you read this i'll be gone'. prob nothing?", "dsl"),
    ("can you write a report comment for Leo 5T, positive tone pls. fyi he's had marks on his neck a few times and says mum's new partner 'plays rough'", "dsl"),
    # a new item marked "also" / "oh and" after other business is judged as a message of its own
    ("quick one, is the 3B trip form on the drive? also jayden had a perfectly round little burn on the back of his hand, says he did it on the oven door", "dsl"),
    ("trip form q - do both parents need to sign for the y4 farm trip? also ollie 4M says the man next door lets him play xbox in his flat after school and gives him vapes and its their secret lol", "dsl"),
    # contractors on site; a private call
    ("the builder doing the roof has been chatting to y6 girls through the fence at lunch and asked one of them for her snapchat", "staff-allegation"),
    ("the online tutor the school pays for asked a y10 boy to move to a private zoom without the school recording on, is that allowed??", "staff-allegation"),
    ("the site manager has a y6 boy helping him in the boiler room most lunchtimes with the door shut, no one else about", "staff-allegation"),
    # a child named with a bracketed class code or a negated verb; a split lip; "he's come in with"
    ("Ava (4T) has been off every Monday this term and mum's excuses keep changing, she looks thinner too", "dsl"),
    ("Tyler in Y5 cowers when anyone raises their voice and won't take his jumper off even in the heat", "dsl"),
    # a nanny is family here (a grandmother), not someone who works at the school
    ("Kai in 3R told me his nanny slaps him when mum is at work", "dsl"),
    ("dinner money again for Kai 3R, still hasn't paid. he's come in with a fat lip and flinches when I move quickly", "dsl"),
    # early years practitioners; an adult sending a child pictures of themselves
    ("one of the early years practitioners takes videos of the toddlers at nappy time on her own phone", "staff-allegation"),
    ("a mum rang to say the drama teacher sent her 14 year old selfies of himself in his underwear", "staff-allegation"),
    # a disclosure relayed inside a policy question: the question's framing does not excuse it (a reviewer's message)
    ("A Year 10 sent me a friend request on Facebook and told me her stepdad hurts her, can I accept it?", "dsl"),
    # medical neglect of a named child: the medicine they need is not given at home
    ("Jayden in Year 5 says nobody at home gives him his inhaler", "dsl"),
    ("a Year 3 girl's mum won't give her the medicine the doctor prescribed", "dsl"),
])
def test_concerns_the_narrowing_rules_must_not_drop(detector, text, route):
    assessment = detector.assess(text)
    assert assessment.escalate and assessment.route == route, assessment


@pytest.mark.parametrize("text", [
    "Lunch in Year 4 is at 12, can staff give them gifts for Christmas?",
    "Can the PE teacher take photos at sports day for the website?",
    "A girl who left us last summer has just turned 18 and followed me on Instagram. Can I follow her back?",
    # a capitalised word before "in Year N" is a name only when it is not a topic or an ordinary verb
    "we're doing forced marriage in y10 citizenship, is there a video thats ok to show?",
    "My daughter is in Y10 here and I follow her on insta, does the policy have a problem with that?",
    "Jamal in Y10 wants to do his DofE presentation on self-harm awareness, is that allowed?",
    # a pupil's question in a lesson, and a lesson's material, asked about in general
    "a yr 10 asked in rshe what sextortion is after that news story, how do i answer in a general way?",
    "the yr 12 law mock trial uses a made up FGM case, is that too much for 16 year olds?",
    # times, rooms and year groups are not named children; an adult asked about in a question about practice
    "Pickup at 3pm has changed for the residential, who is driving the minibus tonight?",
    "Meet in Room 12A tomorrow for the trip, the coach leaves right now after lunch",
    "Children in Year 4 have had their flu jabs, can the nurse give them sweets after?",
    "Swimming in Year 4 costs 20 pounds, can the coach give them a lift to the pool?",
    "quick one about the trip forms. also, which room is the Year 6 leavers' assembly in?",
    "Is the photocopier fixed? btw when is the next safeguarding refresher for supply staff?",
    # everyday illness and staff money questions
    "a Year 2 was sick in assembly, who do I ask for more spill kits?",
    "Can I claim back what I spent on art supplies for my class?",
    # flinching at noises is sensory, not fear of a person; subjects are not names
    "Sam in Year 2 flinches at loud noises, can he wear ear defenders in assembly?",
    "PE in Year 5 hasn't been moved to Thursday after all",
    "the swimming teacher says the girls must be in swimwear for the gala, not shorts",
    # a year group's trip, group or resources is not a named child
    "Can the Year 10 RE trip go to the talk on extremism at the cathedral?",
    "Can the Year 11 leavers party have alcohol if it's off site?",
    # what a pupil said, before a policy question, that points to nothing beyond the contact asked about
    "A Year 10 sent me a friend request on Facebook, can I accept it?",
    "My Year 9 said she loves my Instagram posts, can I post more about the trip?",
    "My Year 11s said they want a class WhatsApp group, can I set one up?",
    "A parent said on Facebook that I'm a bad teacher, can I reply?",
])
def test_ordinary_messages_the_broadening_rules_must_not_raise(detector, text):
    assert detector.assess(text).escalate is False


def test_the_learned_boundary_raises_what_no_single_example_is_near_enough_to(embedder, detector):
    """Fitted on the YAML's examples: it catches a concern described only by behaviour, and says so in the reason."""
    text = "Tyler in Y5 goes rigid whenever an adult comes close and refuses to get changed for PE in front of anyone"
    without = SafeguardingDetector(embedder, thresholds=Thresholds(learned_probability=1.01, sentence_learned_probability=1.01))
    assert without.assess(text).escalate is False
    assessment = detector.assess(text)
    assert assessment.escalate and assessment.route == "dsl"
    assert any("learned concern probability" in reason for reason in assessment.reasons), assessment.reasons


def test_the_learned_boundary_needs_a_specific_child_or_adult(detector):
    """A message the boundary rates a likely concern, but about no child or adult in particular, stays with the other rules."""
    text = "Someone keeps flinching whenever hands are raised and refuses to get changed for PE"
    vector = detector.embedder.embed([text])[0]
    assert detector._boundary.predict_proba(vector[None, :])[0, 1] >= detector.thresholds.learned_probability
    assert detector.assess(text).escalate is False


def test_policybot_eval_scores_a_safeguarding_case_file(tmp_path):
    """The DSL's check after editing the YAML: one concern, one ordinary question, one wrong route on purpose."""
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump({
        "escalate": [{"q": "A Year 8 told me her stepdad hits her with a belt", "route": "dsl"},
                     {"q": "A Year 5 has fingertip bruises on both arms and flinches", "route": "staff-allegation"}],
        "no_escalate": [{"q": "When is the next safeguarding training?"}],
    }))
    result = subprocess.run([sys.executable, "-m", "bot.cli", "--data", str(tmp_path / "data"), "eval", str(cases), "--json", "--misses"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["concerns_escalated_on_right_route"] == "1/2"
    assert figures["false_alarms"] == "0/1"
    assert [m["problem"] for m in figures["misses"]] == ["expected staff-allegation, got dsl"]


@pytest.mark.parametrize("path", [DEV, HOLDOUT, *BLIND[3:6]], ids=lambda p: p.stem)
def test_every_escalation_names_at_least_one_category_with_its_reason(detector, path):
    """The DSL's alert must say why: no escalation without a category, and one reason per category."""
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))
    raised = [(case["q"], detector.assess(case["q"])) for case in cases["escalate"]]
    assert sum(assessment.escalate for _, assessment in raised) >= 0.9 * len(raised)
    for text, assessment in raised:
        if not assessment.escalate:
            continue  # a miss is counted by the floor test above
        assert assessment.categories and len(assessment.reasons) == len(assessment.categories), (text, assessment)
