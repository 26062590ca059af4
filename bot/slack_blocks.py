"""Block Kit for PolicyBot's Slack messages: Answer -> blocks + plain-text fallback.

Everything that came from staff or from a document is escaped (`neutralise`) so an echoed
`@channel`, `<!here>` or `<@U123>` never pings anyone.
"""

from __future__ import annotations

import json
import re

from bot import messages, slack_messages as say

HELPFUL = "policybot_helpful"
NOT_HELPFUL = "policybot_not_helpful"
ASK_PERSON = "policybot_ask_person"
CHOOSE_SCHOOL = "policybot_choose_school"

SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section's text
VALUE_LIMIT = 1900  # and 2000 in a button's value
TEXT_LIMIT = 3900

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def neutralise(text: str) -> str:
    """Escape Slack's control characters and break broadcast words, so nothing echoed can mention anyone."""
    text = (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b\\1", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str) -> str:
    return "\n".join(f">{line}" if line.strip() else ">" for line in neutralise(text).split("\n"))


def citation_line(citation) -> str:
    label = neutralise(citation.label)
    if citation.url:
        return f"— <{citation.url}|{label}>"
    return f"— {label}"


def _intro(answer) -> str:
    if answer.answered and answer.quoted and answer.citations:
        return messages.covered_intro(answer.school_name, answer.citations[0].title)
    if answer.quoted and answer.citations:  # "may not answer": the note, then the nearest clause as a quote block
        return answer.answer.split("\n\n", 1)[0]
    body = answer.answer
    for warning in answer.warnings:
        body = body.replace(warning, "")
    return body.strip()


def answer_text(answer) -> str:
    """The notification / fallback text: the same words as the blocks, in mrkdwn."""
    parts = [neutralise(_intro(answer))]
    for citation in answer.citations[: answer.quoted]:
        parts.append(_quote(citation.quote) + "\n" + citation_line(citation))
    parts.extend(":warning: " + neutralise(w) for w in answer.warnings)
    return _clip("\n\n".join(parts), TEXT_LIMIT)


def answer_blocks(answer, question_text: str = "") -> list[dict]:
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": _clip(neutralise(_intro(answer)), SECTION_LIMIT)}}]
    for citation in answer.citations[: answer.quoted]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(_quote(citation.quote), SECTION_LIMIT)}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(citation_line(citation), SECTION_LIMIT)}]})
    for warning in answer.warnings:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ":warning: " + _clip(neutralise(warning), SECTION_LIMIT)}]})
    blocks.append(feedback_actions(answer.question_id, answer.school, question_text))
    return blocks


def feedback_actions(question_id: str, school: str, question_text: str) -> dict:
    vote = json.dumps({"q": question_id, "s": school})
    ask = json.dumps({"q": question_id, "s": school, "t": question_text[:VALUE_LIMIT - 200]})
    return {
        "type": "actions",
        "block_id": "policybot_feedback",
        "elements": [
            {"type": "button", "action_id": HELPFUL, "text": {"type": "plain_text", "text": say.HELPFUL}, "value": vote},
            {"type": "button", "action_id": NOT_HELPFUL, "text": {"type": "plain_text", "text": say.NOT_HELPFUL}, "value": vote},
            {"type": "button", "action_id": ASK_PERSON, "text": {"type": "plain_text", "text": say.ASK_A_PERSON}, "value": ask},
        ],
    }


def private_text_blocks(text: str, note: str = "") -> list[dict]:
    """A plain private reply (safeguarding guidance): no buttons, nothing that invites a public follow-up."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": _clip(neutralise(text), SECTION_LIMIT)}}]
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return blocks


def school_picker(schools: dict[str, str], pending: dict) -> list[dict]:
    """Buttons to pick one of `schools` ({id: name}); the pending question (`pending`, small) rides in the value."""
    elements = []
    for school_id, name in schools.items():
        value = json.dumps({"s": school_id, "p": pending}, ensure_ascii=False)
        elements.append({"type": "button", "action_id": f"{CHOOSE_SCHOOL}:{school_id}",
                         "text": {"type": "plain_text", "text": _clip(name, 75)}, "value": value})
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": say.CHOOSE_SCHOOL}},
        {"type": "actions", "block_id": "policybot_school", "elements": elements[:25]},
    ]


def home_view(school_names: list[str]) -> dict:
    examples = "\n".join(f"• _{e}_" for e in say.HOME_EXAMPLES)
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": say.HOME_TITLE}},
            {"type": "section", "text": {"type": "mrkdwn", "text": say.HOME_INTRO + "\n" + say.answers_from(school_names)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": say.HOME_HOW_TO_ASK + "\n*Examples*\n" + examples}},
            {"type": "divider"},
            {"type": "section", "text": {"type": "mrkdwn", "text": say.HOME_SAFEGUARDING}},
        ],
    }
