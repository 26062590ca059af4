"""The `policybot` group: global options, logging, and every command."""

from __future__ import annotations

import logging

import click

from bot.cli.admin import eval_command, gaps, index_command, show, status
from bot.cli.ask import ask
from bot.cli.chat import chat
from bot.cli.context import Group, runtime
from bot.cli.escalations import escalations
from bot.cli.serve import serve
from bot.teams.package import teams_package


@click.group(cls=Group)
@click.option("--config", envvar="POLICYBOT_CONFIG", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--policies", type=click.Path(file_okay=False), help="Policies folder (default: policies/).")
@click.option("--data", type=click.Path(file_okay=False), help="Data folder for the index and the database (default: data/).")
@click.option("--model", help="all-MiniLM-L6-v2 (the small option) or a sentence-transformers model directory (default: all-mpnet-base-v2).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress (ids, counts, timings; never message text).")
@click.pass_context
def main(ctx, config, policies, data, model, verbose):
    """PolicyBot: answers staff questions from their own school's policies."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("pypdf", "docx", "urllib3", "slack_sdk", "slack_bolt", "microsoft_agents", "aiohttp.access", "alembic", "readability"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, policies=policies, data=data, model=model)


@main.command()
@click.pass_context
def run(ctx):
    """Start the bot: Slack and/or Teams when their credentials are set, otherwise the local terminal chat."""
    settings = runtime(ctx).settings
    if settings.slack.bot_token or settings.teams.app_id:
        ctx.invoke(serve, teams=bool(settings.teams.app_id))
    else:
        click.echo("No SLACK_BOT_TOKEN or MICROSOFT_APP_ID set: starting the local chat (README: connecting Slack or Teams).")
        ctx.invoke(chat)


for command in (ask, chat, index_command, show, status, gaps, eval_command, serve, escalations, teams_package):
    main.add_command(command)
