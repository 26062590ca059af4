"""One settings object, built from the YAML file and the environment in one place.

Precedence: explicit arguments > environment variables > the YAML file named by
`POLICYBOT_CONFIG` > defaults. Every setting is documented in
`deploy/policybot.example.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from index.errors import PolicyBotError

PLATFORMS = ("slack", "teams")


class SettingsError(PolicyBotError):
    pass


class ChannelRoutes(BaseModel):
    """Where one school's alerts go on one platform (Slack channel ids C0..., Teams channel ids 19:...@thread.tacv2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dsl_channel: str | None = None
    head_channel: str | None = None  # staff allegations
    chair_channel: str | None = None  # allegations about the headteacher
    fallback_channel: str | None = None  # unacknowledged alerts are re-sent here
    policy_owner_channel: str | None = None  # "ask a person"


class SchoolRoutes(ChannelRoutes):
    """A school's routes: the flat keys are Slack's (as before Teams); `slack:` and `teams:` name each platform's."""

    head_user_ids: tuple[str, ...] = ()  # platform users who are this school's headteacher (never sent their own allegation)
    slack: ChannelRoutes | None = None
    teams: ChannelRoutes | None = None

    def on(self, platform: str) -> ChannelRoutes:
        if platform == "slack":
            own = self.slack or ChannelRoutes()
            flat = ChannelRoutes(**{k: getattr(self, k) for k in ChannelRoutes.model_fields})
            return ChannelRoutes(**{k: getattr(own, k) or getattr(flat, k) for k in ChannelRoutes.model_fields})
        return self.teams or ChannelRoutes()


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

    # What the conversation core asks of a platform's settings (TeamsSettings answers the same), so that it never
    # branches on the platform's name.

    def school_of_place(self, channel: str | None, team: str | None, tenant: str | None, private: bool) -> str | None:
        """The school a channel is mapped to; a direct message has none."""
        return None if private else self.channel_schools.get(channel or "")

    def user_key(self, user: str) -> str:
        """The id `user_schools` and `admins` list a user by."""
        return user

    def catalogue_owner_channel(self, policies) -> str | None:
        """The catalogue's `owner_channel` of a school's policies names a Slack channel."""
        return next((p.owner_channel for p in policies if p.owner_channel), None)


class TeamsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str | None = None
    app_password: str | None = None
    tenant_id: str | None = None  # the school's (or trust's) Microsoft 365 tenant; activities from others are refused
    tenants: tuple[str, ...] = ()  # more tenants, for a trust with several
    # where incoming requests' signing keys are published (an OpenID configuration with a jwks_uri)
    openid_metadata_url: str = "https://login.botframework.com/v1/.well-known/openidconfiguration"
    # where the bot gets its own bearer token (client credentials); default: Microsoft Entra's endpoint for the tenant
    token_url: str | None = None
    issuer: str = "https://api.botframework.com"
    team_schools: dict[str, str] = Field(default_factory=dict)  # Teams team id -> school id
    tenant_schools: dict[str, str] = Field(default_factory=dict)  # tenant id -> school id
    user_schools: dict[str, str | list[str]] = Field(default_factory=dict)  # Entra object id -> school id(s)
    admins: tuple[str, ...] = ()  # Entra object ids allowed to run status and reindex

    @field_validator("openid_metadata_url", "token_url")
    @classmethod
    def _https_unless_loopback(cls, url: str | None) -> str | None:
        if url is None:
            return url
        parsed = urlparse(url)
        if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1")):
            return url
        raise ValueError(f"{url!r} must be https (plain http only for 127.0.0.1 or localhost)")

    default_school: None = None  # a Teams message always comes from a team, a tenant or a mapped person

    def school_of_place(self, channel: str | None, team: str | None, tenant: str | None, private: bool) -> str | None:
        """The school a Teams team is mapped to, or else its tenant."""
        return self.team_schools.get(team or "") or self.tenant_schools.get(tenant or "")

    def user_key(self, user: str) -> str:
        """Teams users are "teams:<Entra object id>" in the core; the settings list the object id."""
        return user.removeprefix("teams:")

    def catalogue_owner_channel(self, policies) -> str | None:
        return None  # the catalogue's owner_channel is a Slack channel; Teams uses schools.<id>.teams.policy_owner_channel

    @property
    def allowed_tenants(self) -> tuple[str, ...]:
        return tuple(t for t in (self.tenant_id, *self.tenants) if t)

    def token_endpoint(self) -> str:
        tenant = self.tenant_id or "botframework.com"
        return self.token_url or f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"


class EscalationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dsl_channel: str | None = None  # the Slack DSL channel for every school without its own
    teams_dsl_channel: str | None = None  # the same for Teams
    ack_timeout_minutes: float = 15.0
    retention_days: int = 365 * 7
    max_attempts_per_run: int = 8


class SafeguardingSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    examples_dir: Path | None = None  # a DSL's own case files, learned with the shipped ones (bot/safeguarding/examples.py)
    concern_threshold: float | None = Field(default=None, ge=0, le=1)  # override bot/safeguarding/gate.py's calibration
    unsure_threshold: float | None = Field(default=None, ge=0, le=1)


class AnswerThresholds(BaseModel):
    """When a clause counts as answering a question (see bot/core/coverage.py); only for a model not calibrated there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_score: float = Field(ge=0, le=1)
    strong_score: float = Field(ge=0, le=1)
    max_unknown_share: float = Field(default=0.40, ge=0, le=1)
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
    model: str | None = None  # None: all-mpnet-base-v2; all-MiniLM-L6-v2 (the small option) or a model directory
    answer_thresholds: AnswerThresholds | None = None
    models_dir: Path | None = None  # where models are assembled and exported, shared by data folders; default data_dir/models
    onnx_runtime: bool = True  # run the model under ONNX Runtime (index/onnx_runtime.py); false: PyTorch only
    database_url: str | None = None  # postgresql://... for more than one replica; default SQLite in the data folder
    timezone: str = "Europe/London"  # for the times staff are told ("Sent to #dsl at 10:42")
    school: str | None = None  # one-school install: every question uses this school
    schools: dict[str, SchoolRoutes] = Field(default_factory=dict)
    slack: SlackSettings = SlackSettings()
    teams: TeamsSettings = TeamsSettings()
    escalation: EscalationSettings = EscalationSettings()
    safeguarding: SafeguardingSettings = SafeguardingSettings()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_store(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def database(self) -> str:
        """The database URL: `database_url`, or the SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{self.data_dir / 'policybot.sqlite3'}"

    def routes(self, school: str) -> SchoolRoutes:
        return self.schools.get(school, SchoolRoutes())

    def platform(self, name: str) -> SlackSettings | TeamsSettings | None:
        """A chat platform's settings by its name; None for the terminal."""
        return {"slack": self.slack, "teams": self.teams}.get(name)

    def default_dsl(self, platform: str) -> str | None:
        return self.escalation.dsl_channel if platform == "slack" else self.escalation.teams_dsl_channel

    @property
    def platforms(self) -> tuple[str, ...]:
        """The chat platforms configured, in the order their routes are tried."""
        out = []
        if self.slack.bot_token:
            out.append("slack")
        if self.teams.app_id:
            out.append("teams")
        return tuple(out)


ENVIRONMENT = {
    "POLICYBOT_POLICIES": ("policies_dir",),
    "POLICYBOT_DATA": ("data_dir",),
    "POLICYBOT_MODEL": ("model",),
    "POLICYBOT_MODELS": ("models_dir",),
    "POLICYBOT_ONNX_RUNTIME": ("onnx_runtime",),
    "POLICYBOT_DATABASE_URL": ("database_url",),
    "POLICYBOT_SCHOOL": ("school",),
    "POLICYBOT_DSL_CHANNEL": ("escalation", "dsl_channel"),
    "POLICYBOT_TEAMS_DSL_CHANNEL": ("escalation", "teams_dsl_channel"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_API_URL": ("slack", "api_url"),
    "MICROSOFT_APP_ID": ("teams", "app_id"),
    "MICROSOFT_APP_PASSWORD": ("teams", "app_password"),
    "MICROSOFT_APP_TENANT_ID": ("teams", "tenant_id"),
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
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            where = getattr(exc, "problem_mark", None)
            line = f" line {where.line + 1}" if where else ""
            raise SettingsError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or type(exc).__name__}); "
                                "fix it (see deploy/policybot.example.yaml)") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: expected a mapping of settings")
    for name, keys in ENVIRONMENT.items():
        if env.get(name):
            target = raw
            for key in keys[:-1]:
                target = target.setdefault(key, {})
                if not isinstance(target, dict):
                    raise SettingsError(f"{path}: setting '{key}' must be a mapping (it holds '{keys[-1]}')")
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
