"""The `policybot` command as staff and admins run it: a separate process, real index, real model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POLICIES

POLICYBOT = [sys.executable, "-m", "bot.cli"]


def run(*args: str, data: Path, policies: Path = POLICIES, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("POLICYBOT_RAISE", None)
    env.pop("POLICYBOT_CONFIG", None)
    return subprocess.run(
        [*POLICYBOT, "--data", str(data), "--policies", str(policies), *args],
        input=stdin, capture_output=True, text=True, timeout=300, env=env,
    )


@pytest.fixture
def data_dir(tmp_path, bundled_index) -> Path:
    """A data folder holding a copy of the session's index of the bundled policies."""
    data = tmp_path / "data"
    shutil.copytree(bundled_index, data / "index")
    return data


def assert_one_clear_line(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def test_ask_json_has_the_documented_fields(data_dir):
    result = run("ask", "can I accept a follow from an ex-pupil aged 18?", "--school", "chiltern", "--json", data=data_dir)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["question"] and out["school"] == "chiltern" and out["answered"] is True
    first = out["citations"][0]
    assert set(first) >= {"school", "policy", "title", "section", "heading", "text", "score"}
    assert first["section"] == "6.2" and "below the age of nineteen" in first["text"]


def test_ask_stdin_json_lines_answers_in_order(data_dir):
    lines = [
        {"question": "Are gambling sites covered?", "school": "chiltern"},
        {"question": "What is the uniform policy for pupils?", "school": "pennine-way"},
        {"question": "Does the policy apply to contractors?", "school": "kingsmead"},
    ]
    result = run("ask", "-", "--json", data=data_dir, stdin="\n".join(json.dumps(l) for l in lines) + "\n")
    assert result.returncode == 0, result.stderr
    outs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["school"] for o in outs] == ["chiltern", "pennine-way", "kingsmead"]
    assert [o["answered"] for o in outs] == [True, False, True]


def test_ask_stdin_bad_lines_get_their_own_error_and_the_rest_are_answered(data_dir):
    # a comment line first (it once crashed the command), and a broken line after a good one
    # (it was once reported under the good line's question and school)
    stdin = "# not json\n" + json.dumps({"question": "Does the policy apply to contractors?", "school": "kingsmead"}) + "\n{broken\n"
    result = run("ask", "-", "--json", data=data_dir, stdin=stdin)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    outs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outs) == 3
    assert outs[0]["error"].startswith("line 1:") and outs[0]["question"] is None
    assert outs[1]["school"] == "kingsmead" and outs[1]["answered"] is True and "error" not in outs[1]
    assert outs[2]["error"].startswith("line 3:") and outs[2]["question"] is None and outs[2]["school"] is None


def test_unknown_school(data_dir):
    assert_one_clear_line(run("ask", "hello?", "--school", "hogwarts", data=data_dir), "hogwarts", "mill-lane")


def test_empty_question(data_dir):
    assert_one_clear_line(run("ask", "   ", "--school", "chiltern", data=data_dir), "Please type a question")


def test_fifty_thousand_character_question(data_dir):
    assert_one_clear_line(run("ask", "social media " * 4000, "--school", "chiltern", data=data_dir), "characters")


def test_missing_index(tmp_path):
    assert_one_clear_line(run("ask", "Can I post photos?", "--school", "chiltern", data=tmp_path / "empty"), "policybot index")


def test_corrupt_index(data_dir):
    from index.store import resolve_current

    (resolve_current(data_dir / "index") / "vectors.faiss").write_bytes(b"not a faiss index")
    assert_one_clear_line(run("ask", "Can I post photos?", "--school", "chiltern", data=data_dir), "corrupt", "policybot index")


def test_malformed_metadata_names_file_and_field(tmp_path, policies_copy):
    catalogue = policies_copy / "catalogue.yaml"
    catalogue.write_text(catalogue.read_text().replace("next_review: 2025-04-30", "next_review: sometime soon"))
    result = run("index", data=tmp_path / "data", policies=policies_copy)
    assert_one_clear_line(result, "catalogue.yaml", "next_review")


def test_help_is_fast_because_heavy_imports_are_lazy():
    code = "import sys, bot.cli; assert 'torch' not in sys.modules and 'faiss' not in sys.modules and 'sentence_transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    result = subprocess.run([*POLICYBOT, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "ask" in result.stdout


def test_a_broken_catalogue_never_stops_the_chat(data_dir, policies_copy):
    """The chat builds the index when the policies changed; a catalogue with a mistake is named with its line,
    in one line, and the published index goes on answering."""
    with (policies_copy / "catalogue.yaml").open("a", encoding="utf-8") as handle:
        handle.write("  broken-school:\n    name: [unclosed\n")
    result = run("chat", "--school", "chiltern", data=data_dir, policies=policies_copy,
                 stdin="can I accept a follow from an ex-pupil aged 18?\nquit\n")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "catalogue.yaml line" in warnings[0] and "still serving" in warnings[0], result.stderr
    assert "below the age of nineteen" in result.stdout
    asked = run("ask", "can I accept a follow from an ex-pupil aged 18?", "--school", "chiltern", data=data_dir, policies=policies_copy)
    assert asked.returncode == 0 and "below the age of nineteen" in asked.stdout, asked.stderr
    assert_one_clear_line(run("index", data=data_dir, policies=policies_copy), "catalogue.yaml line")
