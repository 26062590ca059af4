"""Where a concern goes: the recipient's channel on a configured platform, or the DSL's when the route has none.

- a child's welfare: the DSL's channel (the school's, else the trust-wide default);
- an adult who works with the children: the headteacher's channel;
- the headteacher: the chair of governors' channel.

A missing head or chair channel falls back to the DSL's channel, and the alert
says so. Only a concern with no channel at all is undeliverable: start-up warns,
`status` shows it, and the member of staff is told plainly that nobody was alerted.
The platform that raised it is tried first, then any other that is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings

OWN_CHANNEL = {"dsl": "dsl_channel", "head": "head_channel", "chair": "chair_channel"}
FALLBACK_NOTES = {
    "head": "No headteacher channel is set up for this school, so this allegation about an adult came to the DSL's channel.",
    "chair": "No chair of governors channel is set up for this school, so this allegation about the headteacher came to the "
             "DSL's channel. If the headteacher is also the DSL, pass it to the chair of governors or the LADO now.",
}


@dataclass(frozen=True)
class Route:
    platform: str
    channel: str
    recipient: str  # "dsl" | "head" | "chair": who it is for
    fallback: bool = False  # in the DSL's channel because the recipient has none

    @property
    def note(self) -> str | None:
        return FALLBACK_NOTES[self.recipient] if self.fallback else None


def route_for(settings: Settings, school: str | None, recipient: str, platform: str | None,
              available: tuple[str, ...] | None = None) -> Route | None:
    """The route for a concern raised on `platform`, trying it first; None when no channel exists at all."""
    platforms = available if available is not None else settings.platforms
    order = ([platform] if platform in platforms else []) + [p for p in platforms if p != platform]
    for name in order:
        own = _channel(settings, school, recipient, name)
        if own:
            return Route(name, own, recipient)
    for name in order:
        dsl = _channel(settings, school, "dsl", name)
        if dsl and recipient != "dsl":
            return Route(name, dsl, recipient, fallback=True)
    return None


def missing_routes(settings: Settings, schools: list[str]) -> list[str]:
    """One line per school and recipient whose concerns would go nowhere or only to the DSL's channel (for start-up and status)."""
    out = []
    for school in schools:
        for recipient in ("dsl", "head", "chair"):
            route = route_for(settings, school, recipient, None)
            if route is None:
                own = OWN_CHANNEL[recipient]
                wanted = own if recipient == "dsl" else f"{own} (or at least dsl_channel, where they then go)"
                out.append(f"{school}: no channel for {_who(recipient)} on any platform: such a concern alerts nobody; "
                           f"set schools.{school}.{wanted} for Slack, or the same under schools.{school}.teams")
            elif route.fallback:
                out.append(f"{school}: no {OWN_CHANNEL[recipient]} for {_who(recipient)}: those alerts go to the DSL's channel; "
                           f"set schools.{school}.{OWN_CHANNEL[recipient]} to send them to their own")
    return out


def _channel(settings: Settings, school: str | None, recipient: str, platform: str) -> str | None:
    routes = settings.routes(school).on(platform) if school else None
    own = getattr(routes, OWN_CHANNEL[recipient]) if routes else None
    if own or recipient != "dsl":
        return own
    return settings.default_dsl(platform)


def _who(recipient: str) -> str:
    return {"dsl": "the DSL", "head": "allegations about staff (the headteacher)", "chair": "allegations about the headteacher (the chair)"}[recipient]
