"""What admins see: the published index and its policies, delivery health, and what staff ask that no policy answers.

One text for every place it is shown: `policybot status`, `/policy status` in
Slack and `status` in Teams (and likewise `gaps`).
"""

from __future__ import annotations

import datetime as dt
import logging

from bot.escalation.routes import missing_routes
from index.errors import PolicyBotError

log = logging.getLogger(__name__)


def status_lines(answerer, settings, deliverer=None, state=None) -> list[str]:
    lines: list[str] = []
    counts: dict[tuple[str, str], int] = {}
    catalogue = None
    try:
        snapshot = answerer.index.current()
        manifest = snapshot.manifest
        counts = {(d.school, d.policy): d.chunks for d in manifest.documents}
        catalogue = snapshot.catalogue
        lines.append(f"Index: version {snapshot.folder.name}, built {manifest.built_at} with {manifest.model}")
        if snapshot.catalogue_note:
            lines.append(f"  {snapshot.catalogue_note}")
    except PolicyBotError as exc:
        lines.append(f"Index: {exc}")
    today = answerer.today()
    for school_id, school in sorted((catalogue.schools if catalogue else {}).items()):
        lines.append(f"{school_id}: {school.name}")
        for policy in school.policies:
            due = policy.next_review.isoformat() if policy.next_review else "no review date"
            flag = "  OVERDUE" if policy.is_overdue(today) else ""
            clauses = counts.get((school_id, policy.id), 0)
            empty = "  NO CLAUSES: check the file and run `policybot index`" if not clauses else ""
            lines.append(f"  - {policy.title} ({policy.id}): {clauses} clauses, next review {due}{flag}{empty}")
    for line in missing_routes(settings, sorted(catalogue.schools) if catalogue else []):
        lines.append(f"Safeguarding route: {line}")
    if deliverer is not None:
        try:
            health = deliverer.health()
            lines.append(f"Safeguarding alerts waiting for delivery: {health.pending}"
                         + ("" if health.worker_running else " (delivery worker NOT running)"))
            lines += [f"  ALERT NOT DELIVERED {f.id[:8]} ({f.school}, {f.route}): {f.error}" for f in health.failures]
            if health.unacknowledged:
                lines.append(f"Delivered but not yet acknowledged: {health.unacknowledged}")
        except Exception:
            log.exception("escalation health check failed")
            lines.append("Safeguarding alerts: health check failed (see logs)")
    else:
        lines.append("Safeguarding alerts: no chat platform delivers them from this process")
    if state is not None:
        c = state.counts()
        lines.append(f"Messages handled: {c['handled_events']}; feedback {c['helpful']} helpful, {c['not_helpful']} not helpful")
    return lines


def gap_lines(state, school: str | None = None, weeks: int = 8) -> list[str]:
    """Declined questions per week, school and area, and "Not helpful" votes per policy section: counts only."""
    rows = state.declines(school)
    recent = sorted({week for week, *_ in rows}, reverse=True)[:weeks]
    lines = ["Questions no loaded policy answers (counts; the questions themselves are never stored):"]
    if not rows:
        lines.append("  none recorded yet")
    for week in recent:
        lines.append(f"  {week}:")
        for _, s, area, count in (r for r in rows if r[0] == week):
            lines.append(f"    {s}: {count} × {area or 'no area of school life near'}")
    votes = state.not_helpful_by_section(school)
    lines.append("\"Not helpful\" votes by policy section:")
    if not votes:
        lines.append("  none recorded yet")
    for s, policy, section, count in votes:
        lines.append(f"  {s or '?'} / {policy or '?'} section {section or '(unnumbered)'}: {count}")
    return lines


def this_week(today: dt.date | None = None) -> str:
    year, week, _ = (today or dt.date.today()).isocalendar()
    return f"{year}-W{week:02d}"
