"""Block Kit for PolicyBot's Slack messages: the core's structures in, blocks and a plain-text fallback out.

Everything that came from staff or from a document is escaped (`neutralise`) so an echoed
`@channel`, `<!here>` or `<@U123>` never pings anyone; so is every value echoed back from a
button. The words come from bot/messages.py.
"""

from __future__ import annotations

import json
import re

from bot import messages
from bot.core.answer import Answer, Citation, Escalated
from bot.escalation.alert import Alert
from bot.safeguarding.guidance import guidance

HELPFUL = "policybot_helpful"
NOT_HELPFUL = "policybot_not_helpful"
ASK_PERSON = "policybot_ask_person"
REPORT = "policybot_report"
REPORT_FROM_HOME = "policybot_report_home"
REPORT_SUBMIT = "policybot_report_submit"
CHOOSE_SCHOOL = "policybot_choose_school"
ACK_ACTION = "policybot_escalation_ack"
CLOSE_ACTION = "policybot_escalation_close"

SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section's text
VALUE_LIMIT = 1900  # and 2000 in a button's value
TEXT_LIMIT = 3900
WORDS_PER_BLOCK = 2900

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def neutralise(text: str) -> str:
    """Escape Slack's control characters and break broadcast words, so nothing echoed can mention anyone."""
    text = (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@\u200b\\1", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str) -> str:
    return "\n".join(f">{line}" if line.strip() else ">" for line in neutralise(text).split("\n"))


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT)}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT)}]}


def citation_line(citation: Citation) -> str:
    label = neutralise(messages.citation_label(citation.title, citation.section, citation.heading))
    if citation.url and citation.url.startswith(("https://", "http://")):
        return f"— <{citation.url.replace('>', '%3E').replace('|', '%7C')}|{label}>"
    return f"— {label}"


def answer_blocks(answer: Answer, question_text: str = "") -> tuple[str, list[dict]]:
    """(notification text, blocks) for an answer: the intro, the quoted clauses with citations, warnings, buttons."""
    lines = [neutralise(messages.intro(answer))]
    blocks = [_section(neutralise(messages.intro(answer)))]
    for citation in answer.citations[: answer.quoted]:
        blocks.append(_section(_quote(citation.quote)))
        blocks.append(_context(citation_line(citation)))
        lines.append(_quote(citation.quote) + "\n" + citation_line(citation))
    for overdue in answer.overdue:
        warning = neutralise(messages.overdue(overdue.title, overdue.due, answer.ask))
        blocks.append(_context(":warning: " + warning))
        lines.append(":warning: " + warning)
    if answer.offer_report:
        blocks.append(_section(neutralise(messages.OFFER_REPORT)))
    blocks.append(feedback_actions(answer, question_text))
    return _clip("\n\n".join(lines), TEXT_LIMIT), blocks


def feedback_actions(answer: Answer, question_text: str) -> dict:
    shown = answer.citations[0] if answer.quoted and answer.citations else None
    vote = json.dumps({"q": answer.question_id, "s": answer.school, "p": shown.policy if shown else "", "c": shown.section if shown else ""})
    ask = json.dumps({"q": answer.question_id, "s": answer.school, "t": question_text[: VALUE_LIMIT - 200]})
    elements = [
        {"type": "button", "action_id": HELPFUL, "text": {"type": "plain_text", "text": messages.HELPFUL}, "value": vote},
        {"type": "button", "action_id": NOT_HELPFUL, "text": {"type": "plain_text", "text": messages.NOT_HELPFUL}, "value": vote},
        {"type": "button", "action_id": ASK_PERSON, "text": {"type": "plain_text", "text": messages.ASK_A_PERSON}, "value": ask},
    ]
    if answer.offer_report:
        report = json.dumps({"q": answer.question_id, "s": answer.school, "t": question_text[: VALUE_LIMIT - 200]})
        elements.append({"type": "button", "action_id": REPORT, "style": "danger", "value": report,
                         "text": {"type": "plain_text", "text": messages.REPORT_BUTTON}})
    return {"type": "actions", "block_id": "policybot_feedback", "elements": elements}


def escalated_blocks(escalated: Escalated) -> tuple[str, list[dict]]:
    """The private reply to a concern: where it went (or that nobody was alerted), what to do now, and the school's
    reporting clause when it has one. No buttons: nothing that invites a public follow-up."""
    delivery = escalated.delivery
    if delivery.alerted:
        truth = messages.sent_to(delivery.sent_to, delivery.recorded_at, escalated.recipient)
    else:
        truth = messages.nobody_alerted(escalated.recipient)
    steps = guidance(escalated.recipient, escalated.categories)
    lines = [f"*{neutralise(truth)}*"]
    if delivery.fallback:
        lines.append(neutralise(messages.sent_to_dsl_instead(escalated.recipient)))
    lines += ["", neutralise(messages.concern_heading(escalated.recipient)), f"*{messages.WHAT_TO_DO}*"]
    lines += [f"• {neutralise(step)}" for step in steps]
    blocks = [_section("\n".join(lines))]
    text = "\n".join(lines)
    if escalated.reporting_clause is not None:
        clause = escalated.reporting_clause
        blocks.append(_section(messages.REPORTING_CLAUSE + "\n" + _quote(clause.quote)))
        blocks.append(_context(citation_line(clause)))
        text += "\n\n" + messages.REPORTING_CLAUSE + "\n" + _quote(clause.quote)
    return _clip(text, TEXT_LIMIT), blocks


def school_picker(schools: tuple[tuple[str, str], ...], pending: dict) -> list[dict]:
    """Buttons to pick a school; the pending question (small) rides in the value."""
    elements = []
    for school_id, name in schools:
        value = json.dumps({"s": school_id, "p": pending}, ensure_ascii=False)
        elements.append({"type": "button", "action_id": f"{CHOOSE_SCHOOL}:{school_id}",
                         "text": {"type": "plain_text", "text": _clip(name, 75)}, "value": value[:VALUE_LIMIT]})
    return [_section(messages.CHOOSE_SCHOOL), {"type": "actions", "block_id": "policybot_school", "elements": elements[:25]}]


def home_view(school_names: list[str]) -> dict:
    examples = "\n".join(f"• _{neutralise(e)}_" for e in messages.HOME_EXAMPLES)
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": messages.HOME_TITLE}},
            _section(messages.HOME_INTRO + "\n" + neutralise(messages.answers_from(school_names))),
            _section(messages.HOME_HOW_TO_ASK + "\n*Examples*\n" + examples),
            {"type": "divider"},
            _section("*" + messages.HOME_SAFEGUARDING.split(":", 1)[0] + "*:" + messages.HOME_SAFEGUARDING.split(":", 1)[1]),
            {"type": "actions", "block_id": "policybot_home_report", "elements": [
                {"type": "button", "action_id": REPORT_FROM_HOME, "style": "danger", "value": "home",
                 "text": {"type": "plain_text", "text": messages.HOME_REPORT}}]},
        ],
    }


def report_modal() -> dict:
    """The App Home's "Report a concern": one box, straight to the DSL."""
    return {
        "type": "modal", "callback_id": REPORT_SUBMIT,
        "title": {"type": "plain_text", "text": messages.HOME_REPORT},
        "submit": {"type": "plain_text", "text": "Send to the DSL"},
        "blocks": [{"type": "input", "block_id": "concern", "label": {"type": "plain_text", "text": messages.REPORT_PROMPT[:150]},
                    "element": {"type": "plain_text_input", "action_id": "words", "multiline": True, "max_length": 3000}}],
    }


def alert_blocks(alert: Alert) -> tuple[str, list[dict]]:
    """(notification text, blocks) of a safeguarding alert: stored facts only; the words verbatim in plain_text blocks."""
    when = int(alert.raised_at.timestamp())
    who = f"<@{alert.raised_by}>" if alert.raised_by and re.fullmatch(r"[UW][A-Z0-9]+", alert.raised_by) else neutralise(alert.raised_by or "unknown user")
    where = f"<#{alert.where}>" if alert.where and re.fullmatch(r"[CDG][A-Z0-9]+", alert.where) else neutralise(alert.where or "a direct message")
    if alert.permalink and alert.permalink.startswith("https://"):
        where += f" (<{alert.permalink}|message>)"
    cats = "\n".join(f"• *{neutralise(c)}*: {neutralise(r)}" for c, r in alert.categories) or "• none recorded"
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Raised by*\n{who}"},
            {"type": "mrkdwn", "text": f"*When*\n<!date^{when}^{{date_short_pretty}} {{time}}|{alert.raised_at.isoformat()}>"},
            {"type": "mrkdwn", "text": f"*Where*\n{where}"},
            {"type": "mrkdwn", "text": f"*Route*\n{alert.route_label} · school {neutralise(alert.school)}"},
        ]},
        _section(f"*Category*\n{cats}"),
    ]
    if alert.fallback_note:
        blocks.append(_section(":warning: " + neutralise(alert.fallback_note)))
    blocks.append(_section(f"*{messages.ALERT_WORDS}*"))
    words = alert.words or " "
    for start in range(0, len(words), WORDS_PER_BLOCK):
        blocks.append({"type": "section", "text": {"type": "plain_text", "text": words[start: start + WORDS_PER_BLOCK], "emoji": False}})
    status = [f"Escalation {alert.escalation_id}"]
    if alert.acknowledged:
        status.append(f"acknowledged by <@{alert.acknowledged[0]}> at {alert.acknowledged[1]}")
    if alert.closed:
        status.append(f"closed by <@{alert.closed[0]}> at {alert.closed[1]}")
    blocks.append(_context(" · ".join(status)))
    buttons = []
    if alert.can_acknowledge:
        buttons.append({"type": "button", "action_id": ACK_ACTION, "value": alert.escalation_id, "style": "primary",
                        "text": {"type": "plain_text", "text": messages.ACKNOWLEDGE}})
    if alert.can_close:
        buttons.append({"type": "button", "action_id": CLOSE_ACTION, "value": alert.escalation_id,
                        "text": {"type": "plain_text", "text": messages.CLOSE}})
    if buttons:
        blocks.append({"type": "actions", "block_id": f"escalation:{alert.escalation_id}", "elements": buttons})
    categories = ", ".join(c for c, _ in alert.categories) or alert.route_label
    text = f"{alert.title}: raised by {who} ({neutralise(categories)}). Open the alert to read it."
    return text, blocks[:50]
