"""Admins' commands: index (publish, dry run, rollback), show, status, gaps and eval."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli.context import runtime


@click.command("index")
@click.option("--dry-run", is_flag=True, help="Show what changed without publishing.")
@click.option("--rollback", is_flag=True, help="Serve the previously published index version again.")
@click.option("--keep", type=click.IntRange(min=1), default=5, show_default=True, help="Index versions to keep.")
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False), help="Policies folder (default: policies/).")
@click.pass_context
def index_command(ctx, dry_run, rollback, keep, policies_dir):
    """Rebuild what changed in the policies folder and publish it as a new index version."""
    if policies_dir:
        ctx.find_root().obj["policies"] = policies_dir
    rt = runtime(ctx)
    if rollback:
        from index import publish

        click.echo(f"Now serving index version {rt.rollback_index()} from {rt.settings.index_dir}, with the catalogue it was published with.")
        if publish.chunked_by_other_code(publish.current_version(rt.settings.index_dir)):
            click.echo("It was chunked by another version of PolicyBot, so the next `policybot index` or `make run` will chunk every policy again.")
        return
    report = rt.build_index(dry_run=dry_run, keep=keep)
    click.echo(report.summary())
    rt.gate  # noqa: B018 - the safeguarding examples are learned at index time too: a DSL's new file is checked now
    rt.gate.warm()


@click.command("show")
@click.argument("school")
@click.option("--policy", help="Only this policy (its id in catalogue.yaml).")
@click.option("--full", is_flag=True, help="Each clause and dropped line in full, not cut to one line.")
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False), help="Policies folder (default: policies/).")
@click.pass_context
def show(ctx, school, policy, full, policies_dir):
    """What the bot made of a school's documents: each one's clauses with their sections and headings, and what was
    dropped as noise (web page clutter, page headers and footers, contents lists). Reads the files as `index` would."""
    from bot.settings import load_settings
    from index import store
    from index.build import all_sources, read_source
    from index.catalogue import load_catalogue
    from index.errors import PolicyBotError
    from index.publish import outline

    obj = ctx.find_root().obj
    settings = load_settings(obj.get("config"), policies_dir=policies_dir or obj.get("policies"), data_dir=obj.get("data"))
    catalogue = load_catalogue(settings.policies_dir)
    if school not in catalogue.schools:
        known = ", ".join(sorted(catalogue.schools))
        raise click.ClickException(f"No school {school!r} in {settings.policies_dir}/catalogue.yaml; the schools are: {known}")
    try:
        published = {(d.school, d.policy): d.sha256 for d in store.read_manifest(store.resolve_current(settings.index_dir)).documents}
    except store.IndexNotReady:
        published = {}
    found = all_sources(settings.policies_dir, catalogue)
    sources = [s for s in found.sources if s.school == school and policy in (None, s.policy)]
    if policy is None:
        for path, why in found.not_indexed:
            if path.startswith(f"{school}/"):
                click.echo(f"Not indexed: {path}: {why}.")
    if not sources:
        raise click.ClickException(f"{school} has no policy {policy!r} in catalogue.yaml" if policy else f"{school} has no policies yet")
    for source in sources:
        try:
            reading = read_source(source)
        except PolicyBotError as exc:
            click.echo(f"{source.school}/{source.policy} ({source.title}): NOT INDEXED: {exc}")
            continue
        served = published.get((source.school, source.policy))
        state = ("published" if served == reading.digest else "changed since the published index: run `policybot index`"
                 if served else "not yet published: run `policybot index`")
        click.echo(f"{source.school}/{source.policy} ({source.title}), {source.path}: {state}")
        for line in outline(reading, school, full=full):
            click.echo("  " + line)


@click.command()
@click.pass_context
def status(ctx):
    """The published index and every policy with its review date (overdue flagged), routes and alert delivery."""
    rt = runtime(ctx)
    from bot.core.admin import status_lines
    from index import publish, store

    for line in status_lines(rt.answerer, rt.settings, None, rt.state):
        click.echo(line)
    try:
        needing = publish.read_metadata(store.resolve_current(rt.settings.index_dir))
    except store.IndexNotReady:
        needing = []
    for extra in needing:
        dates = ", ".join(f"{k.replace('_', ' ')} {extra[k]}" for k in ("approved", "next_review") if extra.get(k)) or "no dates found"
        click.echo(f"NEEDS METADATA: {extra['file']} ({extra['school']}/{extra['policy']}, {dates}): add it to catalogue.yaml")


@click.command()
@click.option("--school", help="Only this school.")
@click.pass_context
def gaps(ctx, school):
    """What staff ask that no loaded policy answers: declined questions per week, school and area, and "Not helpful"
    votes per policy section. Counts only: the questions themselves are never stored."""
    from bot.core.admin import gap_lines

    for line in gap_lines(runtime(ctx).state, school):
        click.echo(line)


@click.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--misses", is_flag=True, help="List the questions that missed.")
@click.pass_context
def eval_command(ctx, file, as_json, misses):
    """Score a question file (hit@1/3/5, answered, confident-wrong, not-covered declined, cross-school citations),
    or a safeguarding case file (forwarded, offered the report, missed, right route, false alarms)."""
    from bot.evaluate import evaluate, evaluate_safeguarding, load_questions, load_safeguarding_cases, read_eval_file

    rt = runtime(ctx)
    data = read_eval_file(Path(file))
    cases = load_safeguarding_cases(Path(file), data)
    report = evaluate_safeguarding(rt.gate, cases) if cases is not None else evaluate(rt.answerer, rt.gate, load_questions(Path(file), data))
    figures = report.figures()
    if as_json:
        click.echo(json.dumps({**figures, "misses": report.misses} if misses else figures))
        return
    for key, value in figures.items():
        click.echo(f"{key:34} {value}")
    if misses:
        for miss in report.misses:
            where = f"[{miss['school']}] " if "school" in miss else ""
            click.echo(f"  MISS {where}{miss['q']} ({miss['problem']})")
