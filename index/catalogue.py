"""The policy catalogue: which schools exist and what each policy document is.

`policies/catalogue.yaml` names every school and policy. Errors name the file
and the field so an admin can fix the YAML without reading code.
"""

from __future__ import annotations

from index.errors import PolicyBotError

import datetime as dt
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CATALOGUE_FILE = "catalogue.yaml"
SCHOOL_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class CatalogueError(PolicyBotError):
    """The catalogue is missing or malformed; the message names the file and field."""


class PolicyMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=SCHOOL_ID.pattern)
    file: str
    title: str = Field(min_length=1)
    approved: dt.date | None = None
    next_review: dt.date | None = None
    url: str | None = None
    owner_channel: str | None = None  # Slack channel of the policy's owner, for "ask a person"

    def is_overdue(self, today: dt.date) -> bool:
        return self.next_review is not None and today > self.next_review


class SchoolMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    ask: str = Field(min_length=1, description="Who staff should ask when the policy is silent")
    policies: tuple[PolicyMeta, ...] = ()


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schools: dict[str, SchoolMeta]

    @field_validator("schools")
    @classmethod
    def _school_ids(cls, schools: dict[str, SchoolMeta]) -> dict[str, SchoolMeta]:
        for school_id in schools:
            if not SCHOOL_ID.match(school_id):
                raise ValueError(f"school id {school_id!r} must be lower-case letters, digits and hyphens")
        return schools

    def school(self, school_id: str) -> SchoolMeta:
        try:
            return self.schools[school_id]
        except KeyError:
            known = ", ".join(sorted(self.schools)) or "none"
            raise UnknownSchool(f"Unknown school {school_id!r}; known schools: {known}") from None

    def policy(self, school_id: str, policy_id: str) -> PolicyMeta | None:
        for policy in self.school(school_id).policies:
            if policy.id == policy_id:
                return policy
        return None


class UnknownSchool(PolicyBotError):
    pass


def load_catalogue(policies_dir: Path) -> Catalogue:
    path = Path(policies_dir) / CATALOGUE_FILE
    if not path.is_file():
        raise CatalogueError(f"No catalogue at {path}; create it (see README, 'Adding a policy').")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise CatalogueError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: expected a mapping with a 'schools' key")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise CatalogueError(f"{path}: field '{field}': {first['msg']}") from None
