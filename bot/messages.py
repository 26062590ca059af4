"""Every sentence a person reads from PolicyBot, in one place: one constant or function per message.

Plain text only: each platform adds its own emphasis (bot/slack/blocks.py,
bot/teams/cards.py, bot/cli/render.py). Messages about a fault name the fix.
"""

from __future__ import annotations

import datetime as dt

MAX_QUESTION_CHARS = 2000

# -- asking ---------------------------------------------------------------------------------------

EMPTY_QUESTION = "Please type a question, for example: can I accept a friend request from an ex-pupil?"


def too_long(length: int) -> str:
    return (f"That message is {length:,} characters long; please ask one question in under {MAX_QUESTION_CHARS:,} "
            "characters (quote only the part of the policy you are asking about).")


def unknown_school(school: str, known: list[str]) -> str:
    return f"I don't know the school {school!r}. Known schools: {', '.join(known) or 'none'}."


def not_indexed(school: str) -> str:
    return f"School {school!r} has no policies in the index yet; ask an admin to run `policybot index`."


# -- answers --------------------------------------------------------------------------------------

def answered(school_name: str, title: str) -> str:
    return f"{school_name}'s {title} says:"


def unsure(school_name: str, titles: tuple[str, ...], ask: str) -> str:
    where = f"policies ({_and(titles)})" if len(titles) > 1 else _which(titles)
    return (f"I couldn't find a clause in {school_name}'s {where} that clearly answers this. "
            f"These are the nearest; if they don't answer your question, please ask {ask}.")


def not_covered(school_name: str, titles: tuple[str, ...], ask: str, other_policy: str | None = None) -> str:
    if other_policy:
        return f"I don't have {school_name}'s {other_policy} policy: I can only answer from its {_and(titles) if titles else 'policies'}. Please ask {ask}."
    if len(titles) > 1:
        return f"None of {school_name}'s policies ({_and(titles)}) covers this, so I can't answer it from policy. Please ask {ask}."
    return f"{school_name}'s {_which(titles)} does not cover this, so I can't answer it from policy. Please ask {ask}."


def intro(answer) -> str:
    """The first line of an answer (bot/core/answer.py's Answer), on every platform."""
    if answer.status == "answered":
        return answered(answer.school_name, answer.citations[0].title)
    if answer.status == "unsure":
        return unsure(answer.school_name, answer.titles, answer.ask)
    return not_covered(answer.school_name, answer.titles, answer.ask, answer.other_policy)


def citation_label(title: str, section: str, heading: str) -> str:
    parts = [title]
    if section:
        parts.append(f"section {section}")
    if heading:
        parts.append(f"“{heading}”")
    return ", ".join(parts)


def overdue(title: str, due: dt.date, ask: str) -> str:
    return f"Note: the {title} was due for review on {due:%-d %B %Y} and may be out of date; check with {ask} that it still applies."


def _which(titles: tuple[str, ...]) -> str:
    return " or ".join(titles) if titles else "policies"


def _and(titles: tuple[str, ...]) -> str:
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]


# -- safeguarding -----------------------------------------------------------------------------------

RECIPIENT = {"dsl": "the Designated Safeguarding Lead (DSL)", "head": "the headteacher", "chair": "the chair of governors"}
WHAT_TO_DO = "What to do now (Keeping Children Safe in Education):"
CHILD_STEPS = (
    "Listen, stay calm and take what you are told seriously.",
    "Do not promise to keep it secret: explain that you will have to tell the people who can help.",
    "Do not investigate and do not ask leading questions; only ask open ones (\"tell me what happened\") if you need to.",
    "Write down straight away the child's own words, the time and the place, and what you saw; sign and date it.",
    "Report it to the DSL now, today, in person or by phone as well; do not wait for a reply here.",
)
STAFF_STEPS = (
    "Do not discuss it with the person it is about, and do not investigate it yourself.",
    "Write down what you saw or were told, with the time and the place, in the words used; sign and date it.",
    "Report it now, in person or by phone as well: about the headteacher, to the chair of governors; "
    "you can also contact the Local Authority Designated Officer (LADO) directly.",
)
DANGER = "If a child is in immediate danger or at risk of harm right now, call 999, then tell the DSL."
FGM = ("If you are told that FGM has been carried out on a girl under 18, or you see signs of it, you personally have a "
       "legal duty to report it to the police (call 101) as well as telling the DSL.")
IMAGES = ("Never view, copy, forward, save, screenshot or delete nude or semi-nude images or videos of a child; do not ask "
          "anyone to send them to you. Tell the DSL where they are and leave them where they are.")
SELF_HARM = "If the child may act on thoughts of suicide now, do not leave them alone; get the DSL or call 999."


def concern_heading(recipient: str) -> str:
    return f"This sounds like a safeguarding concern for {RECIPIENT[recipient]}. It must reach them now."


def sent_to(channel: str, at: dt.datetime, recipient: str) -> str:
    who = {"dsl": "the DSL", "head": "the headteacher", "chair": "the chair of governors"}[recipient]
    return f"Sent to {channel} at {at:%H:%M}: {who} will contact you. Only you can see this reply."


def sent_to_dsl_instead(recipient: str) -> str:
    return (f"No channel is set up for {RECIPIENT[recipient]}, so it went to the DSL's channel instead; "
            f"tell {RECIPIENT[recipient]} yourself as well.")


def nobody_alerted(recipient: str) -> str:
    return f"Nobody has been alerted from here: tell {'your DSL' if recipient == 'dsl' else RECIPIENT[recipient]} now, in person."


NOBODY_ALERTED_HERE = "Nobody has been alerted from here: tell your DSL now, in person."
REPORTING_CLAUSE = "Your school's policy on reporting concerns:"

OFFER_REPORT = ("If this is about a child's safety, or an adult's conduct with children, don't wait: "
                "report it to the DSL.")
REPORT_BUTTON = "Report this to the DSL"
REPORT_TYPED = "Type `report` to send your last message to the DSL, or `report <what happened>`."
REPORT_NOTHING_TO_SEND = "There is no message to report; type `report` followed by what happened."
REPORT_EXPIRED = "That report button has expired; please send what happened again with `report ...` or tell your DSL in person."

# -- feedback and people ---------------------------------------------------------------------------

HELPFUL = "Helpful"
NOT_HELPFUL = "Not helpful"
ASK_A_PERSON = "Ask a person"
THANKS_FOR_FEEDBACK = "Thanks, your feedback was recorded (only the vote, not your question)."


def handed_to_person(channel: str) -> str:
    return f"I've passed your question to the policy owner in {channel}; they will reply there."


def no_policy_owner(ask: str) -> str:
    return f"No policy owner channel is set up for this school. Please ask {ask} directly."


def asked_a_person(user: str, school_name: str, question: str, question_id: str) -> str:
    return f"{user} asked a question PolicyBot could not settle from {school_name}'s policy (question id {question_id}):\n{question}"


# -- schools ------------------------------------------------------------------------------------------

NO_SCHOOL_SLACK = ("I don't know which school's policies apply here. Ask an admin to set a school for this channel "
                   "(`slack.channel_schools` in the PolicyBot configuration) or send me a direct message.")
NO_SCHOOL_TEAMS = ("I don't know which school's policies apply here. Ask an admin to map this team or tenant to a school "
                   "(`teams.team_schools` or `teams.tenant_schools` in the PolicyBot configuration).")
NO_SCHOOL = {"slack": NO_SCHOOL_SLACK, "teams": NO_SCHOOL_TEAMS}


def no_school(platform: str) -> str:
    return NO_SCHOOL.get(platform, NO_SCHOOL_SLACK)


CHOOSE_SCHOOL = "You work with more than one school. Which school's policy should I answer from?"
CHANGE_SCHOOL = "Type `school` to choose another school."


def school_chosen(school_name: str) -> str:
    return f"Thanks, I'll answer your questions from {school_name}'s policies. (Type `school` to change it.)"


def answers_from(schools: list[str]) -> str:
    if not schools:
        return "No school is set for you yet: ask an admin to add you to the PolicyBot configuration."
    return "I answer from the policies of: " + ", ".join(schools) + "."


# -- chat platforms -------------------------------------------------------------------------------------

WORKING = "Looking that up…"
WORKING_REACTION = "eyes"
FILES_NOT_READ = "I can't read attached files; please type your question as a message."
FILES_IGNORED_NOTE = "I can't read attached files, so I answered from your message text only."
SOMETHING_WENT_WRONG = "Sorry, something went wrong while looking that up. Please try again in a minute."
ADMIN_ONLY = "Sorry, `{command}` is only for PolicyBot admins. Ask your IT or policy lead if you need it run."
REINDEX_STARTED = "Rebuilding the policy index now; I'll reply here when it is done."
REINDEX_FAILED = "The reindex failed: {error}"
USAGE_SLACK = ("Ask me a policy question: `/policy can I accept a friend request from an ex-pupil?`\n"
               "`/policy report <what happened>` sends a concern straight to the DSL.\n"
               "Admins can also use `/policy status`, `/policy gaps` and `/policy reindex`.")
USAGE_TEAMS = ("Ask me a policy question, for example: can I accept a friend request from an ex-pupil?\n"
               "`report <what happened>` sends a concern straight to the DSL; `school` changes your school.\n"
               "Admins can also type `status`, `gaps` and `reindex`.")

HOME_TITLE = "PolicyBot"
HOME_INTRO = "I answer questions from your school's own policies, quoting the clause I relied on."
HOME_EXAMPLES = (
    "can I accept a friend request from an ex-pupil?",
    "may I post photos of pupils on my own Instagram?",
    "can I use my personal phone to contact parents?",
)
HOME_SAFEGUARDING = (
    "Safeguarding concerns: if your message describes a concern about a child or an allegation about a member of staff, "
    "I don't answer it from policy. I give you the next steps privately and pass it to the Designated Safeguarding Lead "
    "(or the right person for allegations) straight away, and tell you where it went. Never wait for a bot: if a child is "
    "in immediate danger, call 999."
)
HOME_HOW_TO_ASK = "Send me a direct message, mention me in a channel, or use `/policy <question>` (only you see the answer)."
HOME_REPORT = "Report a concern"
REPORT_PROMPT = "What happened? Write it as you would tell the DSL: who, what, when, where. It goes to them at once."

# -- alerts ---------------------------------------------------------------------------------------------

ACKNOWLEDGE = "Acknowledge"
CLOSE = "Close"
ALERT_WORDS = "Their words, exactly as written:"
