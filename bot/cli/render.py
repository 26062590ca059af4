"""Replies as plain text, for the terminal chat and `policybot ask`."""

from __future__ import annotations

from bot import messages
from bot.core.answer import Answer, Escalated, Reply
from bot.safeguarding.guidance import guidance


def reply_text(reply: Reply, terminal: bool = True) -> str:
    if reply.escalated is not None:
        return escalated_text(reply.escalated)
    if reply.answer is not None:
        return answer_text(reply.answer, terminal)
    if reply.choose_school:
        return "\n".join([messages.CHOOSE_SCHOOL, *(f"  {n}. {name} ({sid})" for n, (sid, name) in enumerate(reply.choose_school, 1))])
    return reply.notice


def answer_text(answer: Answer, terminal: bool = True) -> str:
    lines = [messages.intro(answer)]
    for citation in answer.citations[: answer.quoted]:
        quoted = "\n".join(f"> {line}" for line in citation.quote.split("\n"))
        lines.append(f"{quoted}\n— {messages.citation_label(citation.title, citation.section, citation.heading)}")
    lines += [messages.overdue(o.title, o.due, answer.ask) for o in answer.overdue]
    if answer.offer_report:
        lines.append(messages.OFFER_REPORT + (" " + messages.REPORT_TYPED if terminal else ""))
    return "\n\n".join(lines)


def escalated_text(escalated: Escalated) -> str:
    delivery = escalated.delivery
    if delivery.alerted:
        lines = [messages.sent_to(delivery.sent_to, delivery.recorded_at, escalated.recipient)]
        if delivery.fallback:
            lines.append(messages.sent_to_dsl_instead(escalated.recipient))
    else:
        lines = [messages.nobody_alerted(escalated.recipient)]
    lines += ["", messages.concern_heading(escalated.recipient), messages.WHAT_TO_DO]
    lines += [f"• {step}" for step in guidance(escalated.recipient, escalated.categories)]
    text = "\n".join(lines)
    if escalated.reporting_clause is not None:
        clause = escalated.reporting_clause
        quoted = "\n".join(f"> {line}" for line in clause.quote.split("\n"))
        text += f"\n\n{messages.REPORTING_CLAUSE}\n{quoted}\n— {messages.citation_label(clause.title, clause.section, clause.heading)}"
    return text


def reply_json(reply: Reply, question: str, school: str | None) -> dict:
    """One JSON object for `ask --json`: the answer's fields, or the safeguarding verdict."""
    if reply.answer is not None:
        return {**reply.answer.to_json(), "answer": answer_text(reply.answer, terminal=False), "escalate": False,
                "route": None, "categories": []}
    if reply.escalated is not None:
        e = reply.escalated
        return {"question": question, "school": school, "answered": False, "status": "escalated", "answer": escalated_text(e),
                "citations": [], "escalate": True, "route": e.recipient, "categories": list(e.categories),
                "alerted": e.delivery.alerted, "sent_to": e.delivery.sent_to}
    return {"question": question, "school": school, "answered": False, "answer": "", "citations": [], "error": reply_text(reply)}
