"""Every sentence the bot says to staff, in one place."""

from __future__ import annotations

import datetime as dt

MAX_QUESTION_CHARS = 2000

EMPTY_QUESTION = "Please type a question, for example: can I accept a friend request from an ex-pupil?"


def too_long(length: int) -> str:
    return (
        f"That message is {length:,} characters long; please ask one question in under {MAX_QUESTION_CHARS:,} "
        "characters (quote only the part of the policy you are asking about)."
    )


def unknown_school(school: str, known: list[str]) -> str:
    return f"I don't know the school {school!r}. Known schools: {', '.join(known) or 'none'}."


def covered_intro(school_name: str, title: str) -> str:
    return f"Here is what {school_name}'s {title} says:"


def unsure(school_name: str, titles: list[str], ask: str) -> str:
    which = " or ".join(titles) if titles else "policies"
    return (
        f"I can't find a clause in {school_name}'s {which} that clearly answers this. "
        f"The nearest one is below; if it does not answer your question, please ask {ask}."
    )


def not_covered(school_name: str, titles: list[str], ask: str, other_policy: str | None = None) -> str:
    which = " or ".join(titles) if titles else "policies"
    if other_policy:
        return (
            f"I don't have {school_name}'s {other_policy} policy: I can only answer from its {which}. "
            f"Please ask {ask}."
        )
    return (
        f"{school_name}'s {which} does not cover this, so I can't answer it from policy. "
        f"Please ask {ask}."
    )


def citation_label(title: str, section: str, heading: str) -> str:
    parts = [title]
    if section:
        parts.append(f"section {section}")
    if heading:
        parts.append(f"“{heading}”")
    return ", ".join(parts)


def overdue(title: str, due: dt.date, ask: str) -> str:
    return (
        f"Note: the {title} was due for review on {due:%-d %B %Y} and may be out of date; "
        f"check with {ask} that it still applies."
    )
