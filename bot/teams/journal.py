"""What the Teams alert channel posted, written down as it happens: the Bot Connector keeps no history a bot can
read, so this is how `find` knows whether an earlier attempt landed.

Per escalation, channel and copy (the alert, or its re-send to the fallback channel), one row:

- 'sending' just before the post goes out (with the serviceUrl it goes to);
- 'posted', with the thread's conversation id and the activity id, the moment the Bot Connector says so.

A later attempt finding 'posted' knows the alert is there (a crash or a database fault came between the post
and the record being marked delivered) and does not post again. Finding 'sending' means the earlier attempt
stopped with the request in flight (a 5xx, a timeout, a crash): Teams cannot be asked whether it arrived, so
the alert is posted again rather than risk it being lost; that one window is the only place a repeat can come
from. The table lives in the bot's database, so every replica sees it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, select

from bot.storage.database import Database

log = logging.getLogger(__name__)

metadata = MetaData()
posts = Table(
    "teams_alert_posts", metadata,
    Column("escalation_id", String, primary_key=True),
    Column("channel", String, primary_key=True),
    Column("resent", Integer, primary_key=True),  # 1: the re-send to the fallback channel
    Column("state", String, nullable=False),  # 'sending' | 'posted'
    Column("service_url", String, nullable=False),
    Column("conversation_id", String),  # the thread: "19:...@thread.tacv2;messageid=..."
    Column("activity_id", String),
    Column("at", Float, nullable=False),
)


@dataclass(frozen=True)
class Post:
    escalation_id: str
    channel: str
    resent: bool
    state: str
    service_url: str
    conversation_id: str | None
    activity_id: str | None


class Journal:
    def __init__(self, database: Database | str):
        self._target = database
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:  # opened on first use: `teams_parts` stays cheap
            self._db = Database.open(self._target)
            metadata.create_all(self._db.engine, checkfirst=True)
        return self._db

    def sending(self, escalation_id: str, channel: str, resent: bool, service_url: str) -> None:
        self._write(escalation_id, channel, resent, state="sending", service_url=service_url, conversation_id=None, activity_id=None)

    def posted(self, escalation_id: str, channel: str, resent: bool, service_url: str, conversation_id: str, activity_id: str) -> None:
        self._write(escalation_id, channel, resent, state="posted", service_url=service_url, conversation_id=conversation_id,
                    activity_id=activity_id)

    def forget(self, escalation_id: str, channel: str, resent: bool) -> None:
        """The attempt certainly did not post (refused, throttled, never connected)."""
        with self.db.transaction() as db:
            db.execute(posts.delete().where(*self._key(escalation_id, channel, resent), posts.c.state == "sending"))

    def get(self, escalation_id: str, channel: str, resent: bool) -> Post | None:
        with self.db.reading() as db:
            row = db.execute(select(posts).where(*self._key(escalation_id, channel, resent))).mappings().first()
        return _post(row) if row else None

    def by_activity(self, activity_id: str) -> Post | None:
        with self.db.reading() as db:
            row = db.execute(select(posts).where(posts.c.activity_id == activity_id, posts.c.state == "posted")).mappings().first()
        return _post(row) if row else None

    def _write(self, escalation_id: str, channel: str, resent: bool, **values) -> None:
        with self.db.transaction() as db:
            db.execute(self.db.upsert(posts, ["escalation_id", "channel", "resent"], escalation_id=escalation_id, channel=channel,
                                      resent=int(resent), at=time.time(), **values))

    @staticmethod
    def _key(escalation_id: str, channel: str, resent: bool):
        return posts.c.escalation_id == escalation_id, posts.c.channel == channel, posts.c.resent == int(resent)


def _post(row) -> Post:
    return Post(row["escalation_id"], row["channel"], bool(row["resent"]), row["state"], row["service_url"], row["conversation_id"],
                row["activity_id"])
