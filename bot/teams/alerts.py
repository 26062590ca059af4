"""Safeguarding alerts in Teams: the `AlertChannel` for platform "teams".

An alert is posted proactively as a new thread in the configured channel ("19:...@thread.tacv2") through
POST {serviceUrl}v3/conversations with channelData.channel.id, using the serviceUrl of the activity that
raised the concern (the record's `target`, else its `reply_to`), so a retry after a restart uses it too.
Nothing here retries: bot/escalation/delivery.py decides, and `find` answers from the journal of what was
posted (journal.py; Teams has no history to read). The Deliverer runs in a thread; each call here runs its
own short event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

from bot.escalation.alert import Alert
from bot.escalation.channel import DeliveryError
from bot.escalation.store import Escalation
from bot.settings import Settings
from bot.teams import cards
from bot.teams.connector import Connector, classify
from bot.teams.journal import Journal

log = logging.getLogger(__name__)

DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"  # Microsoft's global one, for a concern raised elsewhere
# how staff know each channel: Teams tells a bot no channel names unless asked per team
CHANNEL_NAMES = {"dsl_channel": "the DSL's Teams channel", "head_channel": "the headteacher's Teams channel",
                 "chair_channel": "the chair of governors' Teams channel", "fallback_channel": "the safeguarding fallback Teams channel",
                 "policy_owner_channel": "the policy owner's Teams channel"}
ANY_CHANNEL = "the DSL's Teams channel"


class ServiceUrls:
    """The serviceUrl each tenant's authenticated activities came from, newest first (for alerts whose record
    carries none: a concern raised on Slack and delivered to Teams)."""

    def __init__(self):
        self._by_tenant: dict[str, str] = {}
        self._latest: str | None = None
        self._lock = threading.Lock()

    def remember(self, tenant: str | None, service_url: str) -> None:
        with self._lock:
            if tenant:
                self._by_tenant[tenant] = service_url
            self._latest = service_url

    def for_tenant(self, tenant: str | None) -> str | None:
        with self._lock:
            return self._by_tenant.get(tenant or "") or self._latest


class DisplayNames:
    """Display names of people seen in authenticated activities, for the alert card (who acknowledged it)."""

    LIMIT = 5000

    def __init__(self):
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()

    def remember(self, user: str, name: str) -> None:
        if user and name:
            with self._lock:
                self._names.pop(user, None)
                self._names[user] = name
                while len(self._names) > self.LIMIT:
                    self._names.pop(next(iter(self._names)))

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._names)


class TeamsAlertChannel:
    platform = "teams"

    def __init__(self, settings: Settings, connector: Connector, journal: Journal, service_urls: ServiceUrls | None = None,
                 names: DisplayNames | None = None):
        self.settings = settings
        self.connector = connector
        self.journal = journal
        self.service_urls = service_urls or ServiceUrls()
        self.names = names or DisplayNames()

    # -- AlertChannel ----------------------------------------------------------------------------

    def post(self, record: Escalation, channel: str, alert: Alert) -> str:
        service_url, tenant = self.target(record)
        activity = cards.alert_activity(alert, raised_by(record), where(record), self.names.snapshot())
        self.journal.sending(record.id, channel, alert.resent, service_url)
        try:
            conversation, activity_id = _run(self.connector.new_thread(service_url, channel, tenant, activity))
        except Exception as exc:
            error = classify(exc, sending=True)
            if not error.maybe_posted:
                self.journal.forget(record.id, channel, alert.resent)
            log.warning("escalation id=%s: Teams post failed: %s", record.id, error.code)
            raise error from None
        if not activity_id:
            raise DeliveryError("no_activity_id", transient=True, maybe_posted=True)
        self.journal.posted(record.id, channel, alert.resent, service_url, conversation, activity_id)
        return activity_id

    def find(self, record: Escalation, channel: str, since: dt.datetime) -> str | None:
        post = self.journal.get(record.id, channel, resent=False)
        if post is not None and post.state == "posted":
            return post.activity_id
        if post is not None:
            log.warning("escalation id=%s: an earlier attempt stopped with its post in flight; Teams keeps no history to check, "
                        "so it is posted again (a repeat is possible, a loss is not)", record.id)
        return None

    def update(self, record: Escalation, channel: str, message: str, alert: Alert) -> None:
        post = self.journal.by_activity(message)
        service_url = post.service_url if post else self.target(record)[0]
        conversation = post.conversation_id if post and post.conversation_id else f"{channel};messageid={message}"
        activity = cards.alert_activity(alert, raised_by(record), where(record), self.names.snapshot())
        try:
            _run(self.connector.update(service_url, conversation, message, activity))
        except Exception as exc:
            raise classify(exc) from None

    def includes(self, record: Escalation, channel: str, users: tuple[str, ...]) -> bool:
        """Whether any of `users` (Entra object ids, or 29: ids) is a member, asked of the serviceUrl the record's alert
        goes through. When Teams cannot tell, the error is raised (a transient one is retried): an allegation about
        the head is never posted on the guess that they are not there."""
        service_url = self.target(record)[0]
        wanted = {u.removeprefix("teams:") for u in users}
        try:
            members = _run(self.connector.member_ids(service_url, channel))
        except Exception as exc:
            error = classify(exc)
            log.warning("could not list the members of a Teams channel (%s); the alert about the head waits", error.code)
            raise error from None
        return bool(wanted & members)

    def describe(self, channel: str) -> str:
        """The channel as staff know it, by the role the configuration gives it."""
        teams = [r.on("teams") for r in self.settings.schools.values()]
        for key, name in CHANNEL_NAMES.items():
            if any(getattr(routes, key) == channel for routes in teams):
                return name
        return ANY_CHANNEL

    # -- where a record's alert goes ---------------------------------------------------------------

    def target(self, record: Escalation) -> tuple[str, str | None]:
        """(serviceUrl, tenant) for a record: its target, else the activity that raised it, else what this process
        last saw from the tenant, else Microsoft's global serviceUrl."""
        facts = [f for f in (record.target, record.reply_to if record.platform == "teams" else None) if isinstance(f, dict)]
        service_url = next((f["serviceUrl"] for f in facts if isinstance(f.get("serviceUrl"), str) and f["serviceUrl"]), None)
        tenant = next((f["tenant"] for f in facts if isinstance(f.get("tenant"), str) and f["tenant"]), None) or self.settings.teams.tenant_id
        return service_url or self.service_urls.for_tenant(tenant) or DEFAULT_SERVICE_URL, tenant


def raised_by(record: Escalation) -> str:
    reply_to = record.reply_to if isinstance(record.reply_to, dict) else {}
    name = reply_to.get("name") if isinstance(reply_to.get("name"), str) else ""
    who = record.raised_by or "unknown user"
    return f"{name} ({who})" if name else who


def where(record: Escalation) -> str:
    reply_to = record.reply_to if isinstance(record.reply_to, dict) else {}
    return cards.where_label(record.channel, bool(reply_to.get("personal")))


def _run(coroutine):
    """Run one coroutine to completion on a fresh event loop (the Deliverer's thread has none)."""
    return asyncio.run(coroutine)
