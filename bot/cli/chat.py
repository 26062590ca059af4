"""`policybot chat`: the terminal chat, the way to try the bot without Slack or Teams."""

from __future__ import annotations

import click

from bot.cli.context import runtime
from bot.cli.render import reply_text
from bot.core.schools import Place
from bot.core.text import safe_text

PROMPT = "you"


def choose_school(catalogue) -> str:
    """Ask which school, by number, id or name; Enter alone asks again (there is no silent default)."""
    schools = sorted(catalogue.schools)
    for number, school_id in enumerate(schools, start=1):
        click.echo(f"  {number}. {catalogue.schools[school_id].name} ({school_id})")
    while True:
        answer = click.prompt("Which school are you from? (number, id or name)", default="", show_default=False).strip()
        picked = pick(answer, catalogue)
        if picked:
            return picked
        click.echo(f"  No school {answer!r}: type its number (1-{len(schools)}), its id or its name." if answer else "  Please choose a school.")


def pick(answer: str, catalogue) -> str | None:
    schools = sorted(catalogue.schools)
    text = answer.strip().lower()
    if text.isdigit() and 1 <= int(text) <= len(schools):
        return schools[int(text) - 1]
    if text in catalogue.schools:
        return text
    named = [s for s in schools if catalogue.schools[s].name.lower() == text]
    starts = [s for s in schools if catalogue.schools[s].name.lower().startswith(text)] if len(text) >= 3 else []
    found = named or starts
    return found[0] if len(found) == 1 else None


@click.command()
@click.option("--school", help="School id, e.g. mill-lane (asked for when not given).")
@click.pass_context
def chat(ctx, school):
    """Chat with the bot in this terminal (no Slack or Teams needed).

    A safeguarding concern gets what to do now; nothing is sent to anyone from here: tell your DSL in person."""
    from bot.core.conversation import Message

    rt = runtime(ctx)
    if built := rt.ensure_index():
        click.echo("Built the index from the policies folder:\n" + built.summary())
    catalogue = rt.catalogue
    school = school or rt.settings.school
    if school:
        rt.answerer.catalogue().school(school)  # an unknown id fails here with the list of known ones
    else:
        school = choose_school(catalogue)
    rt.warm()
    conversation = rt.conversation()
    click.echo(f"PolicyBot: answering from {catalogue.schools[school].name}'s policies. Type a question; "
               "`school` to change school, `report <what happened>` for a concern, Ctrl-D or `quit` to leave.")
    last = ""
    while True:
        try:
            text = safe_text(click.prompt(PROMPT, prompt_suffix="> ", default="", show_default=False)).strip()
        except (EOFError, click.Abort):
            click.echo()
            return
        if text.lower() in {"quit", "exit"}:
            return
        if text.lower() == "school":
            school = choose_school(catalogue)
            continue
        if text.lower() == "report" or text.lower().startswith("report "):
            words = text[6:].strip() or last
            turn = conversation.report(Message(user="local", text=words, place=Place("terminal"), raw_text=words), school)
        else:
            turn = conversation.receive(Message(user="local", text=text, place=Place("terminal"), raw_text=text), school=school)
            last = text
        click.echo("bot> " + reply_text(conversation.reply(turn)).replace("\n", "\n     ") + "\n")

