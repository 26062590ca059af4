"""Adaptive Cards for PolicyBot's Teams messages: the core's structures in, SDK activities out.

Text that came from staff or from a document goes in RichTextBlock TextRuns, which Teams never reads as
markdown, so nothing echoed is formatted, linked or turned into a mention. An answer's activity carries
Teams citation entities (https://schema.org/Message with Claims) whose positions match the [n] markers in its
text and on its card. The sentences come from bot/messages.py.
"""

from __future__ import annotations

import datetime as dt

from microsoft_agents.activity import Activity, Attachment
from microsoft_agents.activity.entity.ai_entity import AIEntity, ClientCitation, ClientCitationAppearance

from bot import messages
from bot.core.answer import Answer, Citation, Escalated, Reply
from bot.escalation.alert import Alert
from bot.safeguarding.guidance import guidance

CARD = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
VERB = "policybot"  # the key of every button's data: what it does
HELPFUL, NOT_HELPFUL, ASK_PERSON, REPORT, SCHOOL, ACKNOWLEDGE, CLOSE = (
    "helpful", "not_helpful", "ask_person", "report", "school", "acknowledge", "close")
VALUE_LIMIT = 1500  # characters of a question carried in a button
NAME_LIMIT = 80  # Teams' limit on a citation's name
ABSTRACT_LIMIT = 160  # and on its abstract
MAX_CITATIONS = 20
# the alert card's labels, as on Slack's (bot/slack/blocks.py)
RAISED_BY, WHEN, WHERE, ROUTE, CATEGORY = "Raised by", "When", "Where", "Route", "Category"
PERSONAL_CHAT, TEAMS_CHANNEL, TEAMS_CHAT = "a personal chat with PolicyBot", "a Teams channel", "a Teams chat"


# -- building blocks ------------------------------------------------------------------------------

def runs(text: str, **style) -> dict:
    """Text shown exactly as given (a TextRun is never markdown)."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text or " ", **style}]}


def card(body: list[dict], actions: list[dict] | None = None) -> dict:
    content = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body, "msteams": {"width": "Full"}}
    if actions:
        content["actions"] = actions
    return content


def submit(title: str, data: dict, style: str | None = None) -> dict:
    action = {"type": "Action.Submit", "title": title, "data": data}
    if style:
        action["style"] = style
    return action


def message(text: str, content: dict | None = None, entities: list | None = None) -> Activity:
    """A message activity: `text` is its notification preview (and carries citation markers); `content` a card."""
    activity = Activity(type="message", text=text, text_format="plain")
    if content is not None:
        activity.attachments = [Attachment(content_type=CARD, content=content)]
    if entities:
        activity.entities = entities
    return activity


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- answers ----------------------------------------------------------------------------------------

def label(citation: Citation) -> str:
    return messages.citation_label(citation.title, citation.section, citation.heading)


def answer_activity(answer: Answer, question: str = "", files: bool = False) -> Activity:
    """The answer: its intro, each quoted clause with [n], its section and a citation entity, the review-date
    warnings, the offer to report, and the buttons."""
    shown = answer.citations[: min(answer.quoted, MAX_CITATIONS)]
    markers = " ".join(f"[{n}]" for n in range(1, len(shown) + 1))
    body = [runs(messages.intro(answer), weight="Bolder")]
    for n, citation in enumerate(shown, 1):
        body.append({"type": "Container", "style": "emphasis", "items": [
            runs(citation.quote),
            runs(f"[{n}] {label(citation)}", isSubtle=True, size="Small"),
        ]})
    for overdue in answer.overdue:
        body.append(runs("⚠ " + messages.overdue(overdue.title, overdue.due, answer.ask), color="Warning"))
    if answer.offer_report:
        body.append(runs(messages.OFFER_REPORT, color="Attention", weight="Bolder"))
    if files:
        body.append(runs(messages.FILES_IGNORED_NOTE, isSubtle=True, italic=True))
    text = messages.intro(answer) + (f" {markers}" if markers else "")
    return message(text, card(body, answer_actions(answer, question)), [citations(shown)] if shown else None)


def answer_actions(answer: Answer, question: str) -> list[dict]:
    top = answer.citations[0] if answer.quoted and answer.citations else None
    vote = {"q": answer.question_id, "s": answer.school, "p": top.policy if top else "", "c": top.section if top else ""}
    ask = {"q": answer.question_id, "s": answer.school, "t": question[:VALUE_LIMIT]}
    actions = [submit(messages.HELPFUL, {VERB: HELPFUL, **vote}), submit(messages.NOT_HELPFUL, {VERB: NOT_HELPFUL, **vote}),
               submit(messages.ASK_A_PERSON, {VERB: ASK_PERSON, **ask})]
    if answer.offer_report:
        actions.append(submit(messages.REPORT_BUTTON, {VERB: REPORT, **ask}, style="destructive"))
    return actions


def citations(shown: tuple[Citation, ...]) -> AIEntity:
    """Teams' citation entity: one Claim per quoted clause, at the position of its [n] marker. Built from the SDK's
    models directly (its add_ai_metadata helper emits fields Teams does not document); no "AI generated" label:
    the clause is quoted, not written by a model."""
    claims = []
    for n, citation in enumerate(shown, 1):
        appearance = ClientCitationAppearance(name=_clip(label(citation), NAME_LIMIT), abstract=_clip(citation.quote.replace("\n", " "), ABSTRACT_LIMIT),
                                              keywords=[k for k in (_clip(f"section {citation.section}", 28) if citation.section else "",) if k] or None)
        if citation.url and citation.url.startswith("https://"):
            appearance.url = citation.url
        claims.append(ClientCitation(position=n, appearance=appearance))
    return AIEntity(citation=claims)


# -- safeguarding ------------------------------------------------------------------------------------

def truth(escalated: Escalated) -> str:
    delivery = escalated.delivery
    if delivery.alerted:
        return messages.sent_to(delivery.sent_to, delivery.recorded_at, escalated.recipient)
    return messages.nobody_alerted(escalated.recipient)


def escalated_activity(escalated: Escalated) -> Activity:
    """The private reply to a concern, exactly the core's structure: where it went (or that nobody was alerted),
    what to do now, the school's reporting clause when it has one. No buttons, nothing else."""
    body = [runs(truth(escalated), weight="Bolder")]
    if escalated.delivery.fallback:
        body.append(runs(messages.sent_to_dsl_instead(escalated.recipient)))
    body.append(runs(messages.concern_heading(escalated.recipient)))
    body.append(runs(messages.WHAT_TO_DO, weight="Bolder"))
    body.extend(runs(f"• {step}") for step in guidance(escalated.recipient, escalated.categories))
    if escalated.reporting_clause is not None:
        clause = escalated.reporting_clause
        body.append({"type": "Container", "style": "emphasis", "items": [
            runs(messages.REPORTING_CLAUSE, weight="Bolder"), runs(clause.quote), runs(label(clause), isSubtle=True, size="Small")]})
    return message(truth(escalated), card(body))


# -- schools and notices --------------------------------------------------------------------------------

def school_picker(schools: tuple[tuple[str, str], ...], held: str = "") -> Activity:
    actions = [submit(_clip(name, 60), {VERB: SCHOOL, "s": school, "t": held[:VALUE_LIMIT]}) for school, name in schools]
    return message(messages.CHOOSE_SCHOOL, card([runs(messages.CHOOSE_SCHOOL, weight="Bolder"), runs(messages.CHANGE_SCHOOL, isSubtle=True)],
                                                actions))


def notice(text: str) -> Activity:
    return message(text)


def reply_activity(reply: Reply, question: str = "", files: bool = False) -> Activity:
    if reply.escalated is not None:
        return escalated_activity(reply.escalated)
    if reply.answer is not None:
        return answer_activity(reply.answer, question, files)
    if reply.choose_school:
        return school_picker(reply.choose_school, reply.held_question)
    return notice(reply.notice)


# -- alerts ------------------------------------------------------------------------------------------------

def alert_activity(alert: Alert, raised_by: str, where: str, names: dict[str, str] | None = None) -> Activity:
    """A CPOMS-style alert: stored facts only, the words verbatim, Acknowledge and Close. `raised_by` and `where`
    as staff know them; `names`: platform user ids to display names, for who acknowledged or closed it."""
    names = names or {}
    when = alert.raised_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    categories = [runs(f"• {category}: {why}") for category, why in alert.categories] or [runs("• " + alert.route_label)]
    body = [
        runs(alert.title, weight="Bolder", size="Large", color="Attention"),
        fact(RAISED_BY, raised_by), fact(WHERE, where), fact(ROUTE, f"{alert.route_label} · school {alert.school}"),
        {"type": "TextBlock", "text": f"{WHEN}: {{{{DATE({when}, SHORT)}}}} {{{{TIME({when})}}}}", "wrap": True},
        runs(CATEGORY, weight="Bolder"), *categories,
    ]
    if alert.fallback_note:
        body.append(runs("⚠ " + alert.fallback_note, color="Warning"))
    body.append(runs(messages.ALERT_WORDS, weight="Bolder"))
    body.append({"type": "Container", "style": "emphasis", "items": [runs(alert.words)]})
    status = [f"Escalation {alert.escalation_id}"]
    if alert.acknowledged:
        status.append(f"acknowledged by {names.get(alert.acknowledged[0], alert.acknowledged[0])} at {alert.acknowledged[1]}")
    if alert.closed:
        status.append(f"closed by {names.get(alert.closed[0], alert.closed[0])} at {alert.closed[1]}")
    body.append(runs(" · ".join(status), isSubtle=True, size="Small"))
    actions = []
    if alert.can_acknowledge:
        actions.append(submit(messages.ACKNOWLEDGE, {VERB: ACKNOWLEDGE, "e": alert.escalation_id}, style="positive"))
    if alert.can_close:
        actions.append(submit(messages.CLOSE, {VERB: CLOSE, "e": alert.escalation_id}))
    return message(alert.title, card(body, actions))


def where_label(conversation: str | None, personal: bool) -> str:
    if personal:
        return PERSONAL_CHAT
    if conversation and "@thread.tacv2" in conversation:
        return TEAMS_CHANNEL
    return TEAMS_CHAT


def fact(title: str, value: str) -> dict:
    """"Title: value" on one line, the value exactly as given."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": f"{title}: ", "weight": "Bolder"},
                                                 {"type": "TextRun", "text": value or " "}]}
