"""Which school's policies a person is asking about.

In order: the install's one school (`school:`); the place the message was written
(a Slack channel mapped to a school, a Teams team or tenant); the person's own
mapping (one school, or several to choose from once, remembered and changeable);
the platform's default school.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings


@dataclass(frozen=True)
class Place:
    """Where a message was written, as the platform names it."""

    platform: str  # "slack" | "teams" | "terminal"
    channel: str | None = None  # Slack channel / Teams conversation
    team: str | None = None  # Slack workspace / Teams team
    tenant: str | None = None  # Microsoft 365 tenant
    private: bool = True  # a direct message / personal chat


@dataclass(frozen=True)
class SchoolChoice:
    school: str | None = None  # the school, when it is settled
    options: tuple[str, ...] = ()  # otherwise the schools to choose from (none: nothing is configured)


class SchoolRouter:
    def __init__(self, settings: Settings, state, known: set[str] | None = None):
        self.settings = settings
        self.state = state
        self.known = known  # school ids of the published catalogue (None: any)

    def for_message(self, user: str, place: Place) -> SchoolChoice:
        s = self.settings
        if s.school:
            return SchoolChoice(s.school)
        mapped = self._place(place)
        if mapped:
            return SchoolChoice(mapped)
        options = self.options(user, place.platform)
        if len(options) == 1:
            return SchoolChoice(options[0])
        if options:
            chosen = self.state.chosen_school(user)
            return SchoolChoice(chosen) if chosen in options else SchoolChoice(None, options)
        platform = s.platform(place.platform)
        default = platform.default_school if platform else None
        return SchoolChoice(default) if default else SchoolChoice()

    def options(self, user: str, platform: str) -> tuple[str, ...]:
        """The schools a person may choose between: their own mapping on that platform."""
        settings = self.settings.platform(platform)
        raw = settings.user_schools.get(settings.user_key(user)) if settings else None
        mapped = [raw] if isinstance(raw, str) else list(raw or [])
        return tuple(s for s in dict.fromkeys(mapped) if self.known is None or s in self.known)

    def _place(self, place: Place) -> str | None:
        settings = self.settings.platform(place.platform)
        return settings.school_of_place(place.channel, place.team, place.tenant, place.private) if settings else None
