"""What a member of staff is told to do now, by Keeping Children Safe in Education (KCSIE), part one.

Category-specific duties (999, FGM, images, self-harm) are added only where the
concern's categories call for them. The sentences are in bot/messages.py.
"""

from __future__ import annotations

from bot import messages

IMMEDIATE = {"immediate-danger", "physical-abuse", "sexual-abuse", "domestic-abuse", "exploitation"}
EXTRA = {"fgm": messages.FGM, "nudes-sharing": messages.IMAGES, "self-harm-suicide": messages.SELF_HARM}


def guidance(recipient: str, categories: tuple[str, ...]) -> tuple[str, ...]:
    """The steps, in order, for a concern for `recipient` ("dsl", "head", "chair") in these categories."""
    cats = set(categories)
    steps = list(messages.CHILD_STEPS if recipient == "dsl" else messages.STAFF_STEPS)
    if recipient != "dsl" or not cats or cats & IMMEDIATE or "reported-by-staff" in cats:
        steps.append(messages.DANGER)
    steps.extend(line for category, line in EXTRA.items() if category in cats)
    return tuple(steps)
