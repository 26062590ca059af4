"""What the conversation core remembers across restarts and replicas, in the bot's database.

- handled events: one answer per message, through platform retries, restarts and several replicas;
- school choices: which school a trust's central staff member picked;
- feedback votes: question id, the voted-on policy section and the vote, never the question;
- declines: how many questions no loaded policy answers, per week, school and area of school life.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update

from bot.storage.database import Database
from bot.storage.owners import is_gone, process_owner
from bot.storage.schema import declines, feedback, handled_events, school_choices

STALE_CLAIM_SECONDS = 600  # a claim left 'pending' this long by a live replica is taken over


class ConversationState:
    def __init__(self, database: Database | str | Path, owner: str | None = None):
        self.db = Database.open(database)
        self.owner = owner or process_owner()  # this process; a pending claim of a process gone from this host is free

    # handled events ------------------------------------------------------------------------------
    def claim(self, key: str, *, take_over_after: float = STALE_CLAIM_SECONDS) -> bool:
        """True when this process should handle the event: the first delivery, or one left pending by a process
        that is gone (killed on this host, or silent for `take_over_after` seconds: another replica still working
        on it keeps it). Durable when it returns."""
        now = time.time()
        with self.db.transaction() as db:
            if db.execute(self.db.insert_ignoring_conflicts(handled_events, ["key"]).values(
                    key=key, owner=self.owner, status="pending", claimed_at=now)).rowcount == 1:
                return True
            holder = db.execute(select(handled_events.c.owner).where(handled_events.c.key == key)).scalar_one_or_none()
            stale = or_(handled_events.c.claimed_at < now - take_over_after, *([handled_events.c.owner == holder] if is_gone(holder) else []))
            return db.execute(update(handled_events).where(
                handled_events.c.key == key, handled_events.c.status == "pending", handled_events.c.owner != self.owner,
                stale).values(owner=self.owner, claimed_at=now)).rowcount == 1

    def finish(self, key: str) -> None:
        with self.db.transaction() as db:
            db.execute(update(handled_events).where(handled_events.c.key == key).values(status="done", done_at=time.time()))

    def release(self, key: str) -> None:
        """Forget a claim whose reply could not be sent, so the platform's retry can try again."""
        with self.db.transaction() as db:
            db.execute(delete(handled_events).where(handled_events.c.key == key, handled_events.c.status == "pending"))

    def event_status(self, key: str) -> str | None:
        with self.db.reading() as db:
            row = db.execute(select(handled_events.c.status).where(handled_events.c.key == key)).first()
        return row[0] if row else None

    def forget_events_before(self, seconds_ago: float) -> int:
        with self.db.transaction() as db:
            return db.execute(delete(handled_events).where(handled_events.c.status == "done",
                                                           handled_events.c.done_at < time.time() - seconds_ago)).rowcount

    # school choices ------------------------------------------------------------------------------
    def choose_school(self, user: str, school: str) -> None:
        with self.db.transaction() as db:
            db.execute(self.db.upsert(school_choices, ["user_id"], user_id=user, school=school, chosen_at=time.time()))

    def chosen_school(self, user: str) -> str | None:
        with self.db.reading() as db:
            row = db.execute(select(school_choices.c.school).where(school_choices.c.user_id == user)).first()
        return row[0] if row else None

    # feedback ------------------------------------------------------------------------------------
    def record_vote(self, question_id: str, user: str, vote: str, school: str | None = None, policy: str | None = None,
                    section: str | None = None) -> None:
        if vote not in ("helpful", "not_helpful"):
            raise ValueError(f"vote must be helpful or not_helpful, not {vote!r}")
        values = dict(school=school, policy=policy, section=section, vote=vote, voted_at=time.time())
        with self.db.transaction() as db:
            db.execute(self.db.upsert(feedback, ["question_id", "user_id"], question_id=question_id, user_id=user, **values))

    def votes(self) -> list[tuple[str, str, str | None, str]]:
        with self.db.reading() as db:
            return [tuple(r) for r in db.execute(select(feedback.c.question_id, feedback.c.user_id, feedback.c.school, feedback.c.vote)
                                                 .order_by(feedback.c.voted_at))]

    def not_helpful_by_section(self, school: str | None = None) -> list[tuple[str, str, str, int]]:
        """(school, policy, section, "Not helpful" votes), most first."""
        query = (select(feedback.c.school, feedback.c.policy, feedback.c.section, func.count())
                 .where(feedback.c.vote == "not_helpful").group_by(feedback.c.school, feedback.c.policy, feedback.c.section)
                 .order_by(func.count().desc()))
        if school:
            query = query.where(feedback.c.school == school)
        with self.db.reading() as db:
            return [(r[0] or "", r[1] or "", r[2] or "", int(r[3])) for r in db.execute(query)]

    # declined questions ---------------------------------------------------------------------------
    def count_decline(self, school: str, area: str, when: dt.date | None = None) -> None:
        year, week, _ = (when or dt.date.today()).isocalendar()
        key = dict(week=f"{year}-W{week:02d}", school=school, area=area)
        with self.db.transaction() as db:
            db.execute(self.db.insert_ignoring_conflicts(declines, ["week", "school", "area"]).values(**key, count=0))
            db.execute(update(declines).where(*(getattr(declines.c, k) == v for k, v in key.items()))
                       .values(count=declines.c.count + 1))

    def declines(self, school: str | None = None) -> list[tuple[str, str, str, int]]:
        """(week, school, area, count), newest week first."""
        query = select(declines.c.week, declines.c.school, declines.c.area, declines.c.count).order_by(
            declines.c.week.desc(), declines.c.school, declines.c.count.desc())
        if school:
            query = query.where(declines.c.school == school)
        with self.db.reading() as db:
            return [tuple(r) for r in db.execute(query)]

    def counts(self) -> dict[str, int]:
        with self.db.reading() as db:
            handled = db.execute(select(func.count()).select_from(handled_events)).scalar_one()
            votes = dict(db.execute(select(feedback.c.vote, func.count()).group_by(feedback.c.vote)).all())
        return {"handled_events": int(handled), "helpful": int(votes.get("helpful", 0)), "not_helpful": int(votes.get("not_helpful", 0))}
