"""A terminal chat: the way to try the bot without a Slack workspace."""

from __future__ import annotations

import click

from bot.answer import Question
from index.errors import PolicyBotError

PROMPT = "you"


def choose_school(runtime) -> str:
    schools = sorted(runtime.catalogue.schools)
    for number, school_id in enumerate(schools, start=1):
        click.echo(f"  {number}. {runtime.catalogue.schools[school_id].name} ({school_id})")
    choice = click.prompt("Which school are you from?", type=click.IntRange(1, len(schools)), default=1)
    return schools[choice - 1]


def run_chat(runtime, school: str) -> None:
    name = runtime.catalogue.school(school).name
    click.echo(f"PolicyBot: answering from {name}'s policies. Type a question; Ctrl-D or 'quit' to leave.")
    runtime.answerer.index.current()  # load the model and index before the first question
    while True:
        try:
            text = click.prompt(PROMPT, prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            click.echo()
            return
        if text.strip().lower() in {"quit", "exit"}:
            return
        try:
            answer = runtime.answerer.answer(Question(text=text, school=school, asker="local"))
        except PolicyBotError as exc:
            click.echo(f"bot> {exc}")
            continue
        click.echo("bot> " + answer.answer.replace("\n", "\n     ") + "\n")
