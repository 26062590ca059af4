"""Settings: the documented example loads as written, the environment wins over the file, and a bad file gets one clear line."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings
from tests.conftest import ROOT

EXAMPLE = ROOT / "deploy" / "policybot.example.yaml"


def test_the_documented_example_is_a_valid_settings_file():
    settings = load_settings(EXAMPLE, env={})
    assert settings.model is None and settings.onnx_runtime and settings.database.startswith("sqlite:///")
    assert set(settings.schools) == {"mill-lane"} and settings.schools["mill-lane"].on("teams").dsl_channel is None
    assert settings.teams.openid_metadata_url.startswith("https://login.botframework.com/")


def test_the_environment_overrides_the_file(tmp_path):
    path = tmp_path / "policybot.yaml"
    path.write_text("school: mill-lane\nslack: {bot_token: from-file}\n", encoding="utf-8")
    settings = load_settings(path, env={"POLICYBOT_SCHOOL": "chiltern", "SLACK_BOT_TOKEN": "xoxb-env",
                                        "POLICYBOT_DATABASE_URL": "postgresql+psycopg://bot@127.0.0.1/policybot"})
    assert settings.school == "chiltern" and settings.slack.bot_token == "xoxb-env"
    assert settings.database == "postgresql+psycopg://bot@127.0.0.1/policybot" and settings.platforms == ("slack",)


@pytest.mark.parametrize("text, phrase", [
    ("safeguarding_model: x\n", "'safeguarding_model'"),
    ("teams: {openid_metadata_url: 'http://example.org/keys'}\n", "must be https"),
    ("answer_thresholds: {min_score: 0.5, strong_score: 0.4}\n", "min_score must not be above strong_score"),
    ("schools: [1, 2\n", "policybot.yaml"),
])
def test_a_bad_settings_file_names_the_setting(tmp_path, text, phrase):
    path = tmp_path / "policybot.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=phrase):
        load_settings(path, env={})
