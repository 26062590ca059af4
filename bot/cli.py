"""The `policybot` command. Library errors become one clear line and a non-zero exit."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from index.errors import PolicyBotError

log = logging.getLogger(__name__)


def _runtime(ctx: click.Context):
    from bot.runtime import Runtime
    from bot.settings import load_settings

    obj = ctx.find_root().obj
    if "runtime" not in obj:
        settings = load_settings(obj.get("config"), policies_dir=obj.get("policies"), data_dir=obj.get("data"), model=obj.get("model"))
        obj["runtime"] = Runtime(settings)
    return obj["runtime"]


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PolicyBotError as exc:
            if os.environ.get("POLICYBOT_RAISE"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=Group)
@click.option("--config", envvar="POLICYBOT_CONFIG", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--policies", type=click.Path(file_okay=False), help="Policies folder (default: policies/).")
@click.option("--data", type=click.Path(file_okay=False), help="Data folder for the index and databases (default: data/).")
@click.option("--model", help="all-mpnet-base-v2 or a sentence-transformers model directory (default: the bundled all-MiniLM-L6-v2).")
@click.option("-v", "--verbose", is_flag=True, help="Log progress (ids, counts, timings; never message text).")
@click.pass_context
def main(ctx, config, policies, data, model, verbose):
    """PolicyBot: answers staff questions from their own school's policies."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj.update(config=config, policies=policies, data=data, model=model)


@main.command("index")
@click.option("--dry-run", is_flag=True, help="Show what changed without publishing.")
@click.option("--rollback", is_flag=True, help="Serve the previously published index version again.")
@click.option("--keep", type=click.IntRange(min=1), default=5, show_default=True, help="Index versions to keep.")
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False), help="Policies folder (default: policies/).")
@click.pass_context
def index_command(ctx, dry_run, rollback, keep, policies_dir):
    """Rebuild what changed in the policies folder and publish it as a new index version."""
    if policies_dir:
        ctx.find_root().obj["policies"] = policies_dir
    runtime = _runtime(ctx)
    if rollback:
        from index import publish

        click.echo(f"Now serving index version {runtime.rollback_index()} from {runtime.settings.index_dir}")
        if publish.chunked_by_other_code(publish.current_version(runtime.settings.index_dir)):
            click.echo("It was chunked by another version of PolicyBot, so the next `policybot index` or `make run` will chunk every policy again.")
        return
    report = runtime.build_index(dry_run=dry_run, keep=keep)
    click.echo(report.summary())


def _school(runtime, school: str | None) -> str:
    school = school or runtime.settings.school
    if not school:
        known = ", ".join(sorted(runtime.catalogue.schools))
        raise click.UsageError(f"Say which school with --school ID (one of: {known}) or set POLICYBOT_SCHOOL.")
    runtime.catalogue.school(school)  # unknown ids fail here with the list of known ones
    return school


@main.command()
@click.argument("question")
@click.option("--school", help="School id, e.g. mill-lane.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object; one per line when reading stdin).")
@click.pass_context
def ask(ctx, question, school, as_json):
    """Ask QUESTION (or '-' to read JSON lines {"question", "school"} from stdin)."""
    runtime = _runtime(ctx)
    if question == "-":
        sys.exit(_ask_stream(runtime, school, as_json))
    from bot.answer import Question

    answer = runtime.answerer.answer(Question(text=question, school=_school(runtime, school)))
    click.echo(json.dumps(answer.to_json(), ensure_ascii=False) if as_json else render(answer))


def _ask_stream(runtime, default_school: str | None, as_json: bool) -> int:
    from bot.answer import Question

    failures = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        row = None  # a line that is not JSON must not be reported under the previous line's question
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("each line must be a JSON object")
            school = row.get("school") or default_school or runtime.settings.school
            if not school:
                raise PolicyBotError("no school: add \"school\" to the line or pass --school")
            answer = runtime.answerer.answer(Question(text=str(row.get("question", "")), school=str(school)))
            out = answer.to_json()
        except (ValueError, PolicyBotError) as exc:
            failures += 1
            out = {"question": row.get("question") if isinstance(row, dict) else None, "school": (row.get("school") if isinstance(row, dict) else None),
                   "answered": False, "answer": "", "citations": [], "error": f"line {number}: {exc}"}
        click.echo(json.dumps(out, ensure_ascii=False) if as_json else render_json(out))
        sys.stdout.flush()
    return 1 if failures else 0


def render(answer) -> str:
    return render_json(answer.to_json())


def render_json(out: dict) -> str:
    if out.get("error"):
        return f"Error: {out['error']}"
    return out["answer"]


@main.command()
@click.option("--school", help="School id, e.g. mill-lane (asked for when not given).")
@click.pass_context
def chat(ctx, school):
    """Chat with the bot in this terminal (no Slack needed)."""
    from bot.local_chat import choose_school, run_chat

    runtime = _runtime(ctx)
    school = _school(runtime, school) if (school or runtime.settings.school) else choose_school(runtime)
    if runtime.ensure_index():
        click.echo("Built the index from the policies folder.")
    run_chat(runtime, school)


@main.command()
@click.pass_context
def run(ctx):
    """Start the bot: Slack when SLACK_BOT_TOKEN is set, otherwise the local terminal chat."""
    runtime = _runtime(ctx)
    if runtime.settings.slack.bot_token:
        ctx.invoke(main.get_command(ctx, "serve"))
    else:
        click.echo("No SLACK_BOT_TOKEN set: starting the local chat (see README to connect Slack).")
        ctx.invoke(chat)


@main.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--misses", is_flag=True, help="List the questions that missed.")
@click.pass_context
def eval_command(ctx, file, as_json, misses):
    """Score a question file (hit@1/3/5, unanswerable handling, cross-school citations),
    or a safeguarding case file (concerns escalated on the right route, false alarms)."""
    from bot.evaluate import evaluate, evaluate_safeguarding, load_questions, load_safeguarding_cases, read_eval_file

    runtime = _runtime(ctx)
    data = read_eval_file(Path(file))
    cases = load_safeguarding_cases(Path(file), data)
    if cases is not None:
        report = evaluate_safeguarding(runtime.safeguarding, cases)
    else:
        report = evaluate(runtime.answerer, load_questions(Path(file), data))
    figures = report.figures()
    if as_json:
        click.echo(json.dumps({**figures, "misses": report.misses} if misses else figures))
        return
    for key, value in figures.items():
        click.echo(f"{key:30} {value}")
    if misses:
        for miss in report.misses:
            where = f"[{miss['school']}] " if "school" in miss else ""
            click.echo(f"  MISS {where}{miss['q']} ({miss['problem']})")


@main.command()
@click.pass_context
def status(ctx):
    """List every school's policies with review dates; flag overdue ones and files needing metadata."""
    import datetime as dt

    from index import publish, store

    runtime = _runtime(ctx)
    today = dt.date.today()
    needing: list[dict] = []
    try:
        folder = store.resolve_current(runtime.settings.index_dir)
        manifest = store.read_manifest(folder)
        counts = {(d.school, d.policy): d.chunks for d in manifest.documents}
        needing = publish.read_metadata(folder)
        click.echo(f"Index: version {folder.name}, built {manifest.built_at} with {manifest.model}")
    except store.IndexNotReady as exc:
        counts = {}
        click.echo(f"Index: {exc}")
    for school_id, school in sorted(runtime.catalogue.schools.items()):
        click.echo(f"{school_id}: {school.name}")
        for policy in school.policies:
            due = policy.next_review.isoformat() if policy.next_review else "no review date"
            flag = "  OVERDUE" if policy.is_overdue(today) else ""
            click.echo(f"  - {policy.title} ({policy.id}): {counts.get((school_id, policy.id), 0)} clauses, next review {due}{flag}")
        for extra in (e for e in needing if e["school"] == school_id):
            dates = ", ".join(f"{k.replace('_', ' ')} {extra[k]}" for k in ("approved", "next_review") if extra.get(k)) or "no dates found"
            click.echo(f"  - {extra['title']} ({extra['policy']}): {counts.get((school_id, extra['policy']), 0)} clauses, {dates}  NEEDS METADATA: add {extra['file']} to catalogue.yaml")
from bot.cli_serve import serve; main.add_command(serve)  # noqa: E402,E702
from bot.cli_escalations import escalations; main.add_command(escalations)  # noqa: E402,E702


if __name__ == "__main__":
    main()
