"""Every Slack-specific sentence the bot says to staff (the rest live in bot/messages.py)."""

from __future__ import annotations

WORKING = "Looking that up…"
WORKING_REACTION = "eyes"

HELPFUL = "Helpful"
NOT_HELPFUL = "Not helpful"
ASK_A_PERSON = "Ask a person"
THANKS_FOR_FEEDBACK = "Thanks, your feedback was recorded (only the vote, not your question)."

NO_SCHOOL = (
    "I don't know which school's policies apply here. Ask an admin to set a school for this channel "
    "(`slack.channel_schools` in the PolicyBot configuration) or send me a direct message."
)
CHOOSE_SCHOOL = "You work with more than one school. Which school's policy should I answer from?"
FILES_NOT_READ = "I can't read attached files; please type your question as a message."
FILES_IGNORED_NOTE = "_I can't read attached files, so I answered from your message text only._"
SOMETHING_WENT_WRONG = "Sorry, something went wrong while looking that up. Please try again in a minute."

ADMIN_ONLY = "Sorry, `/policy {command}` is only for PolicyBot admins. Ask your IT or policy lead if you need it run."
REINDEX_STARTED = "Rebuilding the policy index now; I'll reply here when it is done."
REINDEX_FAILED = "The reindex failed: {error}"
USAGE = (
    "Ask me a policy question: `/policy can I accept a friend request from an ex-pupil?`\n"
    "Admins can also use `/policy status` and `/policy reindex`."
)

ESCALATION_PRIVATE_NOTE = "_Only you can see this reply. Your message has been passed to the safeguarding lead._"
ESCALATION_NOT_CONFIGURED = (
    "_PolicyBot could not pass this on automatically. Please tell your Designated Safeguarding Lead in person now._"
)

HOME_TITLE = "PolicyBot"
HOME_INTRO = "I answer questions from your school's own policies, quoting the clause I relied on."
HOME_EXAMPLES = (
    "can I accept a friend request from an ex-pupil?",
    "may I post photos of pupils on my own Instagram?",
    "can I use my personal phone to contact parents?",
)
HOME_SAFEGUARDING = (
    "*Safeguarding concerns*: if your message describes a concern about a child or an allegation about a member "
    "of staff, I don't try to answer it from policy. I give you the next steps privately and pass it to the "
    "Designated Safeguarding Lead (or the right person for allegations) straight away. Never wait for a bot: "
    "if a child is in immediate danger, call 999."
)
HOME_HOW_TO_ASK = "Send me a direct message, mention me in a channel, or use `/policy <question>` (only you see the answer)."


def answers_from(schools: list[str]) -> str:
    if not schools:
        return "No school is set for you yet: ask an admin to add you to the PolicyBot configuration."
    return "I answer from the policies of: " + ", ".join(schools) + "."


def school_chosen(school_name: str) -> str:
    return f"Thanks, I'll answer your questions from {school_name}'s policies. (Message me again to change it.)"


def handed_to_person(channel: str) -> str:
    return f"I've passed your question to the policy owner in <#{channel}>; they will reply there."


def no_policy_owner(ask: str) -> str:
    return f"No policy owner channel is set up for this school. Please ask {ask} directly."


def asked_a_person(user: str, school_name: str, question: str, question_id: str) -> str:
    return (
        f"<@{user}> asked a question PolicyBot could not settle from {school_name}'s policy "
        f"(question id {question_id}):\n>>> {question}"
    )


def reindexed(changes: list[str], chunks: int, documents: int) -> str:
    what = "\n".join(f"• {line}" for line in changes) if changes else "• nothing changed"
    return f"Reindex done: {documents} policies, {chunks} clauses.\n{what}"
