"""What a member of staff is told, at once and privately, when their message raises a concern.

Follows Keeping Children Safe in Education (KCSIE), part one. Category-specific
lines (999, FGM, images) are included only where the assessment calls for them.
"""

from __future__ import annotations

from bot.answer import Assessment

RECIPIENT = {
    "dsl": "the Designated Safeguarding Lead (DSL)",
    "staff-allegation": "the headteacher",
    "staff-allegation-head": "the chair of governors",
}

CORE = (
    "*What to do now (Keeping Children Safe in Education):*",
    "• Listen, stay calm and take what you are told seriously.",
    "• Do not promise to keep it secret: explain that you will have to tell the people who can help.",
    "• Do not investigate and do not ask leading questions; only ask open ones (\"tell me what happened\") if you need to.",
    "• Write down straight away the child's own words, the time and the place, and what you saw; sign and date it.",
    "• Report it to the DSL now, today, in person or by phone as well; do not wait for a reply here.",
)

STAFF = (
    "*What to do now (Keeping Children Safe in Education):*",
    "• Do not discuss it with the person it is about, and do not investigate it yourself.",
    "• Write down what you saw or were told, with the time and the place, in the words used; sign and date it.",
    "• Report it now, in person or by phone as well: if it is about the headteacher, to the chair of governors; "
    "you can also contact the Local Authority Designated Officer (LADO) directly.",
)

DANGER = "• If a child is in immediate danger or at risk of harm right now, call 999, then tell the DSL."
FGM = (
    "• If you are told that FGM has been carried out on a girl under 18, or you see signs of it, "
    "you personally have a legal duty to report it to the police (call 101) as well as telling the DSL."
)
IMAGES = (
    "• Never view, copy, forward, save, screenshot or delete nude or semi-nude images or videos of a child; "
    "do not ask anyone to send them to you. Tell the DSL where they are and leave them where they are."
)
SELF_HARM = "• If the child may act on thoughts of suicide now, do not leave them alone; get the DSL or call 999."

IMMEDIATE = {"immediate-danger", "physical-abuse", "sexual-abuse", "domestic-abuse", "exploitation"}


def recipient(assessment: Assessment) -> str:
    if assessment.route == "staff-allegation":
        return RECIPIENT["staff-allegation-head" if assessment.about_head else "staff-allegation"]
    return RECIPIENT["dsl"]


def staff_guidance(assessment: Assessment) -> str:
    """The private reply: who the concern is for, what to do now, and category-specific duties."""
    cats = set(assessment.categories)
    # Whether it was passed on automatically is said by the chat adapter, which knows; this text must stay true without it.
    lines = [f"This sounds like a safeguarding concern for {recipient(assessment)}. It must reach them now."]
    lines += STAFF if assessment.route == "staff-allegation" else CORE
    if assessment.route == "staff-allegation" or not cats or cats & IMMEDIATE:
        lines.append(DANGER)
    if "fgm" in cats:
        lines.append(FGM)
    if "nudes-sharing" in cats:
        lines.append(IMAGES)
    if "self-harm-suicide" in cats:
        lines.append(SELF_HARM)
    return "\n".join(lines)
