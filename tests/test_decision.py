"""The learned answer-or-not decision (bot/core/decision.py): which file decides, and what it never does."""

from __future__ import annotations

import json
import logging

from bot.core import decision
from bot.core.answering import Question

MPNET = "packaged:all-mpnet-base-v2"


def test_the_default_model_has_a_fitted_decision_and_another_model_keeps_the_thresholds():
    fitted = decision.decision_for(MPNET)
    assert fitted is not None and 0.5 <= fitted.threshold <= 0.95 and len(fitted.coef) == len(decision.FEATURES)
    assert decision.decision_for("bundled:all-MiniLM-L6-v2") is None


def test_a_damaged_or_mismatched_decision_file_is_ignored_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(decision, "FOLDER", tmp_path)
    target = decision.path_for(MPNET)
    target.write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert decision.decision_for(MPNET) is None
    assert "hand-set thresholds decide" in caplog.text
    good = decision.Decision(MPNET, (0.0,) * 13, (1.0,) * 13, (0.0,) * 13, 0.0, 0.5).to_json()
    good["features"] = good["features"][:-1]
    target.write_text(json.dumps(good), encoding="utf-8")
    assert decision.decision_for(MPNET) is None


def test_a_match_below_the_floor_never_answers_however_sure_the_regression_is():
    sure = decision.Decision(MPNET, (0.0,) * 13, (1.0,) * 13, (0.0,) * 13, 10.0, 0.5)  # probability ~1 for anything
    read = dict.fromkeys(decision.FEATURES, 0.0) | {"confidence": 0.2}
    assert sure.probability(read) > 0.99
    assert sure.answers(read) and not sure.answers(read, floor=0.325)


def test_the_running_answerer_decides_with_it(answerer):
    """The shipped answerer reads the same signals the fitting tool recorded: a clear rule is answered, a question
    the policy does not touch is not."""
    assert answerer.decision is not None
    assert answerer.answer(Question("can I accept a follow from an ex-pupil aged 18?", "chiltern")).answered
    assert not answerer.answer(Question("How many days of paternity leave do I get?", "pennine-way")).answered
