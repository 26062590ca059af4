"""`policybot ask`: one question from the command line, or JSON lines on stdin, answered as the terminal chat does."""

from __future__ import annotations

import json
import sys

import click

from bot.cli.context import runtime
from bot.cli.render import reply_json, reply_text
from bot.core.schools import Place
from bot.core.text import safe_text
from index.errors import PolicyBotError


def ask_one(conversation, text: str, school: str):
    from bot.core.conversation import Message

    message = Message(user="local", text=text, place=Place("terminal"), raw_text=text)
    turn = conversation.receive(message, school=school)
    reply = conversation.reply(turn)
    if turn.kind == "notice" or (reply.notice and reply.answer is None and reply.escalated is None):
        raise PolicyBotError(reply.notice)  # "please type a question", an unknown school, a question too long
    return turn, reply


@click.command()
@click.argument("question")
@click.option("--school", help="School id, e.g. mill-lane.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object; one per line when reading stdin).")
@click.pass_context
def ask(ctx, question, school, as_json):
    """Ask QUESTION (or '-' to read JSON lines {"question", "school"} from stdin).

    A safeguarding concern gets what to do now; nothing is sent to anyone from here."""
    ctx.find_root().obj["json"] = as_json
    rt = runtime(ctx)
    conversation = rt.conversation()
    if question == "-":
        sys.exit(_stream(conversation, school or rt.settings.school, as_json))
    school = school or rt.settings.school
    if not school:
        raise click.UsageError(f"Say which school with --school ID (one of: {', '.join(sorted(rt.catalogue.schools))}) or set POLICYBOT_SCHOOL.")
    text = safe_text(question)
    _, reply = ask_one(conversation, text, school)
    click.echo(json.dumps(reply_json(reply, text, school), ensure_ascii=False) if as_json else reply_text(reply))


def _stream(conversation, default_school: str | None, as_json: bool) -> int:
    """Every line is answered, or gets its own error; nothing on one line can stop the rest."""
    failures = 0
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        line = safe_text(raw).strip()
        if not line:
            continue
        row = None  # a line that is not JSON must not be reported under the previous line's question
        try:
            try:
                row = json.loads(line)
            except RecursionError:
                raise ValueError("the JSON is nested too deeply") from None
            if not isinstance(row, dict):
                raise ValueError("each line must be a JSON object {\"question\": ..., \"school\": ...}")
            school = row.get("school") or default_school
            if not school:
                raise PolicyBotError("no school: add \"school\" to the line or pass --school")
            text = safe_text(row.get("question", ""))
            _, reply = ask_one(conversation, text, safe_text(school))
            out = reply_json(reply, text, safe_text(school))
        except (ValueError, PolicyBotError) as exc:
            failures += 1
            question = safe_text(row.get("question")) if isinstance(row, dict) and row.get("question") is not None else None
            school = safe_text(row.get("school")) if isinstance(row, dict) and row.get("school") is not None else None
            out = {"question": question, "school": school, "answered": False, "answer": "", "citations": [], "error": f"line {number}: {exc}"}
        click.echo(json.dumps(out, ensure_ascii=False) if as_json else (f"Error: {out['error']}" if out.get("error") else out["answer"]))
        sys.stdout.flush()
    return 1 if failures else 0
