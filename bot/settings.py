"""One settings object, built from the YAML file and the environment in one place.

Precedence: explicit arguments > environment variables > the YAML file named by
`POLICYBOT_CONFIG` > defaults. Every setting is documented in
`deploy/policybot.example.yaml`.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SettingsError(PolicyBotError):
    pass


class SchoolRoutes(BaseModel):
    """Where one school's alerts go (Slack channel ids)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dsl_channel: str | None = None
    head_channel: str | None = None  # staff allegations
    chair_channel: str | None = None  # allegations about the headteacher
    fallback_channel: str | None = None  # unacknowledged alerts are re-sent here
    policy_owner_channel: str | None = None  # "ask a person"
    head_user_ids: tuple[str, ...] = ()  # Slack users who are this school's headteacher


class SlackSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bot_token: str | None = None
    app_token: str | None = None
    signing_secret: str | None = None
    api_url: str | None = None
    default_school: str | None = None
    channel_schools: dict[str, str] = Field(default_factory=dict)
    user_schools: dict[str, str | list[str]] = Field(default_factory=dict)
    admins: tuple[str, ...] = ()


class EscalationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dsl_channel: str | None = None  # default for every school without its own
    ack_timeout_minutes: float = 15.0
    retention_days: int = 365 * 7
    max_attempts_per_run: int = 8


class AnswerThresholds(BaseModel):
    """When a clause counts as answering a question (see bot/coverage.py); only for a model not calibrated there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_score: float = Field(ge=0, le=1)
    strong_score: float = Field(ge=0, le=1)
    max_unknown_share: float = Field(default=0.40, ge=0, le=1)
    # the area check (bot/coverage.py), by default as calibrated for the bundled model; null turns it off
    max_area_lead: float | None = Field(default=0.15, ge=0, le=2)
    area_overruled_from: float = Field(default=0.45, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_score > self.strong_score:
            raise ValueError("min_score must not be above strong_score")
        if self.max_area_lead is not None and self.area_overruled_from < self.min_score:
            raise ValueError("area_overruled_from below min_score would never apply; raise it or set max_area_lead: null")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policies_dir: Path = Path("policies")
    data_dir: Path = Path("data")
    model: str | None = None  # all-mpnet-base-v2 or a sentence-transformers model directory; None = bundled all-MiniLM-L6-v2
    # the safeguarding gate's model: its thresholds are calibrated for the bundled one, so it stays unless set here
    safeguarding_model: str | None = None
    answer_thresholds: AnswerThresholds | None = None
    models_dir: Path | None = None  # where packaged models are assembled; default data_dir/models
    onnx_runtime: bool = True  # run the model under ONNX Runtime (index/onnx_runtime.py); false: PyTorch only
    school: str | None = None  # one-school install: every question uses this school
    schools: dict[str, SchoolRoutes] = Field(default_factory=dict)
    slack: SlackSettings = SlackSettings()
    escalation: EscalationSettings = EscalationSettings()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_store(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def database(self) -> Path:
        return self.data_dir / "policybot.sqlite3"

    def routes(self, school: str) -> SchoolRoutes:
        return self.schools.get(school, SchoolRoutes())


ENVIRONMENT = {
    "POLICYBOT_POLICIES": ("policies_dir",),
    "POLICYBOT_DATA": ("data_dir",),
    "POLICYBOT_MODEL": ("model",),
    "POLICYBOT_SAFEGUARDING_MODEL": ("safeguarding_model",),
    "POLICYBOT_ONNX_RUNTIME": ("onnx_runtime",),
    "POLICYBOT_SCHOOL": ("school",),
    "POLICYBOT_DSL_CHANNEL": ("escalation", "dsl_channel"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_API_URL": ("slack", "api_url"),
}


def load_settings(config: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = dict(os.environ if env is None else env)
    path = config or env.get("POLICYBOT_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"No configuration file at {path}; fix POLICYBOT_CONFIG or create the file (see deploy/policybot.example.yaml).")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of settings")
    for name, keys in ENVIRONMENT.items():
        if env.get(name):
            target = raw
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = env[name]
    for key, value in overrides.items():
        if value is not None:
            raw[key] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        where = f"{path}: " if path else ""
        raise SettingsError(f"{where}setting '{field}': {first['msg']}") from None
