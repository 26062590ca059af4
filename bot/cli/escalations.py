"""`policybot escalations`: list, show, export and purge the safeguarding escalation records.

For the DSL team on the server. These commands print safeguarding text to the
terminal (show, export) and nothing to the logs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import sys

import click

from bot.cli.context import runtime
from bot.escalation.store import STATUSES, Escalation

EXPORT_FIELDS = tuple(field.name for field in dataclasses.fields(Escalation))  # every field, as in the JSON lines


def _store(ctx: click.Context):
    return runtime(ctx).escalations


@click.group()
def escalations():
    """Safeguarding escalations: list, show, export, purge."""


@escalations.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--school")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
def list_command(ctx, status, school, limit):
    """One line per escalation, newest first (no message text)."""
    rows = _store(ctx).list(status=status, school=school, limit=limit)
    if not rows:
        click.echo("No escalations.")
    for r in rows:
        error = f"  error: {r.last_error}" if r.last_error and r.status in ("pending", "sending", "failed_permanent") else ""
        click.echo(f"{r.id[:12]}  {r.raised_at}  {r.school}  {r.route}  {','.join(r.categories)}  {r.status}{error}")


@escalations.command()
@click.argument("escalation_id")
@click.pass_context
def show(ctx, escalation_id):
    """One escalation in full, with its audit trail."""
    store = _store(ctx)
    record = store.get(escalation_id)
    for key, value in record.to_json().items():
        if key != "text":
            click.echo(f"{key:22} {value}")
    click.echo("words (exactly as written):")
    click.echo(record.text)
    click.echo("audit:")
    for entry in store.audit(record.id):
        click.echo(f"  {entry.at}  {entry.actor}  {entry.action}  {entry.detail or ''}")


@escalations.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--school")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              help="File to write, readable by its owner only (default: stdout, where a shell redirect gets the umask's mode).")
@click.pass_context
def export(ctx, fmt, status, school, output):
    """Export escalations as JSON lines or CSV (includes the staff member's words).

    JSON lines keep the words exactly. In CSV, a cell a spreadsheet would run as a
    formula (starting with = + - @) gets a leading apostrophe.
    """
    rows = _store(ctx).list(status=status, school=school)
    with _private_output(output) as out:
        if fmt == "jsonl":
            for r in rows:
                out.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
            return
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            data = r.to_json()
            data["categories"], data["reasons"] = ";".join(r.categories), json.dumps(list(r.reasons), ensure_ascii=False)
            writer.writerow({key: _spreadsheet_safe(value) for key, value in data.items()})


def _spreadsheet_safe(value):
    """OWASP CSV-injection advice: text that a spreadsheet would evaluate is prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@contextlib.contextmanager
def _private_output(path: str):
    """stdout for "-", otherwise the file created (or truncated) with mode 0600: it holds safeguarding text."""
    if path == "-":
        yield sys.stdout
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with open(descriptor, "w", encoding="utf-8", newline="") as out:
        os.fchmod(descriptor, 0o600)  # an existing file keeps its old mode through os.open
        out.truncate(0)  # only once the mode is private
        yield out


@escalations.command()
@click.option("--days", type=click.IntRange(min=0), help="Keep this many days (default: escalation.retention_days).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def purge(ctx, days, yes):
    """Delete CLOSED escalations older than the retention period; open ones are never purged."""
    rt = runtime(ctx)
    days = days if days is not None else rt.settings.escalation.retention_days
    if not yes:
        click.confirm(f"Delete closed escalations raised more than {days} days ago?", abort=True)
    removed = rt.escalations.purge(days)
    click.echo(f"Purged {removed} closed escalations older than {days} days.")
    sys.stdout.flush()
