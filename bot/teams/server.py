"""What `policybot serve --teams` wires: `teams_parts(settings)` before the core exists (its `alerts` channel goes
to the escalation Deliverer), then `parts.app(core, escalation_store)`, a `TeamsApp` serving POST /api/messages.

    parts = teams_parts(settings)
    deliverer = Deliverer(store, {"teams": parts.alerts}, settings)
    app = parts.app(core, store)
    app.run("0.0.0.0", 3978)                  # blocking, until SIGTERM or Ctrl-C
    port = app.start_in_thread("127.0.0.1")   # or: in a thread on a free port (tests); app.stop_thread()

The SDK supplies the Activity model, its adapter's turns (`CloudAdapter.process_activity`, TurnContext) and
the Bot Connector client; auth.py, tokens.py, http.py and connector.py replace the defaults that fall short.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ClaimsIdentity, ConnectionManager, TurnContext

from bot.core.answer import Reply
from bot.settings import Settings
from bot.teams.adapter import Plan, TeamsAdapter
from bot.teams.alerts import DisplayNames, ServiceUrls, TeamsAlertChannel
from bot.teams.auth import BotConnectorAuth, OpenIdKeys
from bot.teams.connector import ClientFactory, Connector
from bot.teams.http import MESSAGES_PATH, MessagesEndpoint, web_app
from bot.teams.incoming import incoming
from bot.teams.journal import Journal
from bot.teams.tokens import ClientCredentialsTokens, connection_manager
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

RECEIVE_WORKERS = 16  # core.receive before the acknowledgement
REPLY_WORKERS = 8  # core.reply afterwards
DRAIN_SECONDS = 10.0
NOTIFY_SECONDS = 60.0


class TeamsSetupError(PolicyBotError):
    pass


@dataclass
class TeamsParts:
    settings: Settings
    tokens: ClientCredentialsTokens
    connections: ConnectionManager
    connector: Connector
    auth: BotConnectorAuth
    alerts: TeamsAlertChannel

    def app(self, core, escalation_store=None) -> TeamsApp:
        return TeamsApp(self, core, escalation_store)


def teams_parts(settings: Settings) -> TeamsParts:
    teams = settings.teams
    if not (teams.app_id and teams.app_password):
        raise TeamsSetupError("Teams needs MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (the Azure Bot's app registration); see the README.")
    if not teams.allowed_tenants:
        raise TeamsSetupError("Set MICROSOFT_APP_TENANT_ID (teams.tenant_id, or teams.tenants for a trust with several): "
                              "activities from a tenant the configuration does not name are refused.")
    connections = connection_manager(teams.app_id, teams.app_password, teams.tenant_id, teams.token_endpoint())
    tokens = connections.get_default_connection()
    connector = Connector(teams.app_id, tokens)
    auth = BotConnectorAuth(teams.app_id, OpenIdKeys(teams.openid_metadata_url), teams.issuer, teams.allowed_tenants)
    alerts = TeamsAlertChannel(settings, connector, Journal(settings.database), ServiceUrls(), DisplayNames())
    return TeamsParts(settings, tokens, connections, connector, auth, alerts)


class TeamsApp:
    def __init__(self, parts: TeamsParts, core, escalations=None):
        self.parts = parts
        self.core = core
        self.sdk = CloudAdapter(channel_service_client_factory=ClientFactory(parts.connections, parts.tokens))
        self.sdk.on_turn_error = _log_turn_error  # the SDK's default posts the exception's text into the chat
        self.adapter = TeamsAdapter(core, parts.connector, parts.alerts, escalations)
        self.endpoint = MessagesEndpoint(parts.auth, self._dispatch)
        self._receive = ThreadPoolExecutor(RECEIVE_WORKERS, thread_name_prefix="teams-receive")
        self._reply = ThreadPoolExecutor(REPLY_WORKERS, thread_name_prefix="teams-reply")
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # ---------------------------------------------------------------- one activity
    async def _dispatch(self, identity: ClaimsIdentity, activity: Activity) -> web.StreamResponse:
        inc = incoming(activity)
        self.parts.alerts.service_urls.remember(inc.tenant, inc.service_url)
        self.parts.alerts.names.remember(inc.user, inc.name)
        if activity.type == "invoke":  # PolicyBot's cards use Action.Submit; nothing it sends asks for an invoke
            return web.json_response({}, status=200)
        plan = await asyncio.get_running_loop().run_in_executor(self._receive, self.adapter.decide, inc)
        if plan is not None and _has_work(plan):
            self._spawn(self._turn(identity, activity, inc, plan))
        return web.Response(status=202)

    async def _turn(self, identity: ClaimsIdentity, activity: Activity, inc, plan: Plan) -> None:
        started = []

        async def callback(context: TurnContext) -> None:
            started.append(True)
            await self.adapter.respond(context, inc, plan, self._reply)

        try:
            await self.sdk.process_activity(identity, activity, callback)
        except Exception as exc:
            log.error("could not open a turn to answer (%s)", type(exc).__name__)
            if not started and plan.turn is not None and plan.turn.kind != "duplicate":
                await asyncio.get_running_loop().run_in_executor(self._reply, self.core.done, plan.turn, False)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- telling someone later
    def notify(self, reply_to: dict, reply: Reply) -> bool:
        """Tell a member of staff privately about their concern after a restart; True when it was sent."""
        try:
            coroutine = self.adapter.notify(reply_to, reply)
            loop = self._loop
            if loop is not None and loop.is_running():
                return asyncio.run_coroutine_threadsafe(coroutine, loop).result(NOTIFY_SECONDS)
            return asyncio.run(coroutine)
        except Exception as exc:
            log.warning("could not tell a member of staff about their concern (%s)", type(exc).__name__)
            return False

    # ---------------------------------------------------------------- serving
    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: a free port); returns the port."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(web_app(self.endpoint), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("Teams endpoint listening on %s:%d%s", host, self.port, MESSAGES_PATH)
        await self.endpoint.auth.keys.prefetch()
        return self.port

    async def idle(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait for the answers being sent."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks and asyncio.get_running_loop().time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - asyncio.get_running_loop().time()))

    async def stop(self) -> None:
        await self.idle()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def run(self, host: str, port: int) -> None:
        """Serve until SIGTERM or Ctrl-C; then finish the answers being sent (up to 10 s) and return."""
        asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, stop.set)
                installed[sig] = previous
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            bound = await self.start(host, port)
            print(f"PolicyBot Teams endpoint bound to http://{host}:{bound}{MESSAGES_PATH}", flush=True)
            await stop.wait()
        finally:
            await self.stop()
            for sig, previous in installed.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous)
        self._shutdown_pools()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve from a background thread (tests); returns the port. Stop with `stop_thread()`."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start(host, port))
            except BaseException as exc:  # reported to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="teams-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return int(self.port or 0)

    def wait_idle(self, timeout: float = DRAIN_SECONDS) -> None:
        """From another thread: wait for the answers being sent (tests)."""
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.idle(timeout), self._loop).result(timeout + 5)

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(DRAIN_SECONDS + 10)
        self._shutdown_pools()

    def _shutdown_pools(self) -> None:
        self._receive.shutdown(wait=False)
        self._reply.shutdown(wait=False)


def _has_work(plan: Plan) -> bool:
    return bool(plan.replies or plan.handoff or plan.alert or plan.reindex or (plan.turn and plan.turn.kind != "duplicate"))


async def _log_turn_error(context: TurnContext, error: Exception) -> None:
    log.error("turn failed (%s)", type(error).__name__, exc_info=error)
