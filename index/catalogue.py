"""The policy catalogue: which schools exist and what each policy document is.

`policies/catalogue.yaml` names every school and policy. Errors name the file,
the line and the field so an admin can fix the YAML without reading code.

Dates are ISO dates (2025-09-01), a month ("September 2025", "Sept 2025") or a
school term ("Spring 2026", "Autumn term 2025"); a month or a term means its
last day: Autumn ends on 31 December, Spring on 31 March, Summer on 31 July.
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


TERM_END = {"autumn": (12, 31), "spring": (3, 31), "summer": (7, 31)}
MONTH_OR_TERM = re.compile(r"^(?P<name>[A-Za-z]+)\.?(?:\s+term)?\s+(?P<year>\d{4})$", re.IGNORECASE)


def month_or_term(value: object) -> object:
    """'Spring 2026' -> 2026-03-31, 'September 2025' -> 2025-09-30; anything else is left for pydantic's date."""
    if isinstance(value, str):
        match = MONTH_OR_TERM.match(value.strip())
        if match:
            name, year = match.group("name").lower(), int(match.group("year"))
            if name in TERM_END:
                return dt.date(year, *TERM_END[name])
            month = _month(name)
            if month:
                following = dt.date(year + month // 12, month % 12 + 1, 1)
                return following - dt.timedelta(days=1)
            raise ValueError(f"{value!r} is not a date: write 2025-09-01, a month (September 2025) or a term (Spring 2026)")
    return value


def _month(name: str) -> int:
    import calendar

    for number in range(1, 13):
        if name in (calendar.month_name[number].lower(), calendar.month_abbr[number].lower()) or (
                len(name) >= 3 and calendar.month_name[number].lower().startswith(name)):
            return number
    return 0


class PolicyMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=SCHOOL_ID.pattern)
    file: str
    title: str = Field(min_length=1)
    approved: dt.date | None = None
    next_review: dt.date | None = None
    url: str | None = None
    owner_channel: str | None = None  # Slack channel of the policy's owner, for "ask a person"

    @field_validator("approved", "next_review", mode="before")
    @classmethod
    def _month_or_term(cls, value: object) -> object:
        return month_or_term(value)

    def is_overdue(self, today: dt.date) -> bool:
        return self.next_review is not None and today > self.next_review


class SchoolMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    ask: str = Field(min_length=1, description="Who staff should ask when the policy is silent")
    url: str | None = None  # the school's website or policies page
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
        # where the faulty construct starts ("while scanning a simple key" on the line missing its colon), else
        # where the parser gave up (often the line after)
        where = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise CatalogueError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{path}: expected a mapping with a 'schools' key")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        line = _line(path, first["loc"], first["msg"])
        where = f"{path} line {line}" if line else str(path)
        fix = " (README: 'Adding or updating a policy' shows every key)" if first["type"] in ("extra_forbidden", "missing") else ""
        raise CatalogueError(f"{where}: field '{field}': {first['msg'].removeprefix('Value error, ')}{fix}") from None


def _line(path: Path, loc: tuple, message: str = "") -> int | None:
    """The line of the YAML node at `loc` (its parent's for a missing key), 1-based; a message that quotes a key of
    the mapping reached (a bad school id) points at that key."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    if isinstance(node, yaml.MappingNode):
        named = next((k for k, _ in node.value if f"'{k.value}'" in message), None)
        if named is not None:
            line = named.start_mark.line + 1
    return line
