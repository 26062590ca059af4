"""`policybot serve`: the Slack bot, over Socket Mode (SLACK_APP_TOKEN) or HTTP (`--http`).

HTTP serves Slack's Events API, interactivity and slash commands at /slack/events; Bolt verifies
every request's signature with SLACK_SIGNING_SECRET and refuses ones older than 5 minutes.
Imports of Bolt and the model happen inside the command, so `policybot --help` stays fast.
"""

from __future__ import annotations

import logging
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import click

from index.errors import PolicyBotError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger before reading it


class ServeError(PolicyBotError):
    pass


def make_http_server(app, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threaded HTTP server translating requests to Bolt and back (like bolt's Flask adapter)."""
    from slack_bolt.request import BoltRequest

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # request lines only at debug level (no bodies ever)
            log.debug("http %s", fmt % args)

        def do_GET(self):
            if urlparse(self.path).path == "/healthz":
                self._send(200, "ok", {"content-type": ["text/plain"]})
            else:
                self._send(404, "not found", {})

        def do_POST(self):
            parsed = urlparse(self.path)
            if parsed.path != EVENTS_PATH:
                self._send(404, "not found", {})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, "too large", {})
                return
            body = self.rfile.read(length).decode("utf-8", "replace")
            headers = {k.lower(): [v] for k, v in self.headers.items()}
            response = app.dispatch(BoltRequest(body=body, query=parsed.query, headers=headers))
            self._send(response.status, response.body or "", response.headers)

        def _send(self, status: int, body: str, headers: dict):
            data = body.encode("utf-8")
            self.send_response(status)
            for key, values in headers.items():
                if key.lower() == "content-length":
                    continue
                for value in values if isinstance(values, (list, tuple)) else [values]:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def escalation_parts(settings, client):
    """The safeguarding store and deliverer (bot/escalation_*.py), or (None, None) when they are not installed."""
    try:
        from bot.escalation_delivery import Deliverer
        from bot.escalation_store import EscalationStore
    except ImportError:
        log.warning("escalation modules not available: safeguarding concerns get guidance only")
        return None, None
    store = EscalationStore(settings.database)
    return store, Deliverer(store, client, settings)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _start_watcher(runtime) -> None:
    import threading

    from index.watch import watch_policies

    def report(change_report) -> None:
        runtime.index.reload()
        log.info("policies changed; index rebuilt: %s", "changes published" if change_report.has_changes else "no changes")

    threading.Thread(target=watch_policies, args=(runtime, report), kwargs={"on_error": lambda exc: log.error("reindex failed: %s", exc)},
                     name="policy-watcher", daemon=True).start()


@click.command()
@click.option("--http", "use_http", is_flag=True, help="Serve the Events API over HTTP at /slack/events instead of Socket Mode.")
@click.option("--port", type=int, default=3000, show_default=True, envvar="PORT", help="HTTP port (0 picks a free one).")
@click.option("--host", default="0.0.0.0", show_default=True, help="HTTP address to listen on.")
@click.option("--watch", is_flag=True, help="Rebuild the index when files in the policies folder change.")
@click.pass_context
def serve(ctx, use_http, port, host, watch):
    """Run the Slack bot (Socket Mode when SLACK_APP_TOKEN is set, or --http)."""
    from bot.cli import _runtime
    from bot.slack_app import create_app, make_client

    runtime = _runtime(ctx)
    settings = runtime.settings
    slack = settings.slack
    if not slack.bot_token:
        raise ServeError("SLACK_BOT_TOKEN is not set; create the Slack app from deploy/slack-manifest.yaml and set its bot token.")
    if use_http and not slack.signing_secret:
        raise ServeError("SLACK_SIGNING_SECRET is required with --http (Basic Information > App Credentials in the Slack app).")
    if not use_http and not slack.app_token:
        raise ServeError("Set SLACK_APP_TOKEN (an xapp- token with connections:write) for Socket Mode, or use --http --port N.")

    if runtime.ensure_index():
        click.echo("Built the index from the policies folder.")
    retriever = runtime.index.current().retriever  # load the index and warm the model before the first question
    retriever.areas.nearest(runtime.embedder.embed(["warm up"]), runtime.embedder)  # embeds index/areas.yaml
    # the safeguarding gate embeds its examples and fits its learned boundary on first use; a named
    # child takes the warm-up through every path (nothing is stored or sent: assess only judges)
    runtime.answerer.assess("warm up: a Year 7 pupil said hello")

    client = make_client(settings)
    escalations, deliverer = escalation_parts(settings, client)
    app = create_app(settings, runtime.answerer, client, escalations, deliverer,
                     reindex=lambda: runtime.build_index(progress=False).summary())
    if watch:
        _start_watcher(runtime)
    if deliverer is not None:
        deliverer.start()
    try:
        if use_http:
            server = make_http_server(app, host, port)
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
            click.echo(f"PolicyBot listening on http://{host}:{server.server_address[1]}{EVENTS_PATH}")
            sys.stdout.flush()
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            click.echo("PolicyBot connecting to Slack over Socket Mode")
            SocketModeHandler(app, slack.app_token).start()
    finally:
        if deliverer is not None:
            deliverer.stop()
