"""`policybot serve`: Slack (Socket Mode, or the Events API with --http) and/or Teams (--teams), in one process.

Both platforms share one index, one model, one safeguarding gate, one database
and one escalation delivery. Start-up checks each platform and says what is
wrong in one line (tracebacks only with POLICYBOT_DEBUG); channels the bot cannot
post alerts in, and routes with no channel, are warned about before it listens.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click

from bot.cli.context import runtime
from index.errors import PolicyBotError

log = logging.getLogger(__name__)
NOTIFY_EVERY_SECONDS = 30


class ServeError(PolicyBotError):
    pass


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


@click.command()
@click.option("--http", "use_http", is_flag=True, help="Serve Slack's Events API over HTTP at /slack/events instead of Socket Mode.")
@click.option("--teams", is_flag=True, help="Serve Microsoft Teams (the Bot Framework endpoint POST /api/messages).")
@click.option("--port", type=int, default=3000, show_default=True, envvar="PORT", help="HTTP port (0 picks a free one).")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--slack-port", type=int, default=3000, show_default=True,
              help="With --teams --http: the port of Slack's Events API, beside Teams on --port (0 picks a free one).")
@click.option("--watch", is_flag=True, help="Rebuild the index when files in the policies folder change.")
@click.pass_context
def serve(ctx, use_http, teams, port, host, slack_port, watch):
    """Run the bot for Slack and/or Teams."""
    rt = runtime(ctx)
    settings = rt.settings
    slack_on = bool(settings.slack.bot_token)
    teams = teams or (bool(settings.teams.app_id) and not slack_on)
    if not slack_on and not teams:
        raise ServeError("Neither SLACK_BOT_TOKEN nor MICROSOFT_APP_ID is set; see the README to connect Slack or Teams.")
    if slack_on and use_http and not settings.slack.signing_secret:
        raise ServeError("SLACK_SIGNING_SECRET is required with --http (Basic Information > App Credentials in the Slack app).")
    if slack_on and not use_http and not settings.slack.app_token:
        raise ServeError("Set SLACK_APP_TOKEN (an xapp- token with connections:write) for Socket Mode, or use --http --port N.")
    if teams and not (settings.teams.app_id and settings.teams.app_password):
        raise ServeError("Teams needs MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (the Azure Bot's app registration); see the README.")
    if teams and slack_on and use_http and slack_port == port and port != 0:
        raise ServeError(f"Teams and Slack's Events API cannot share port {port}: give Slack another with --slack-port N.")

    channels, slack_client = {}, None
    if slack_on:
        from bot.slack import startup
        from bot.slack.alerts import SlackAlertChannel
        from bot.slack.app import make_client

        startup.check_tokens(settings, socket_mode=not use_http)
        slack_client = make_client(settings)
        startup.check_connection(slack_client, settings.slack.app_token if not use_http else None)
        channels["slack"] = SlackAlertChannel(slack_client)
    teams_parts = None
    if teams:
        from bot.teams.server import teams_parts as build_teams

        teams_parts = build_teams(settings)
        channels["teams"] = teams_parts.alerts

    if built := rt.ensure_index():
        click.echo("Built the index from the policies folder:\n" + built.summary())
    rt.warm()  # the model, the index, the areas and the safeguarding gate, before the first message

    from bot.escalation.delivery import Deliverer
    from bot.escalation.routes import missing_routes

    deliverer = Deliverer(rt.escalations, channels, settings)
    core = rt.conversation(deliverer)
    schools = sorted(rt.catalogue.schools)
    warnings = list(missing_routes(settings, schools))
    if slack_on:
        warnings += startup.channel_warnings(slack_client, settings, schools)
    for line in warnings:
        click.echo(f"Warning: {line}", err=True)

    notifiers = {}
    slack_app = None
    if slack_on:
        from bot.slack.listeners import create_app

        slack_app = create_app(settings, core, slack_client, alerts=rt.escalations)
        notifiers["slack"] = slack_app.adapter.notify
    teams_app = None
    if teams:
        teams_app = teams_parts.app(core, rt.escalations)
        notifiers["teams"] = teams_app.notify
    if watch:
        _start_watcher(rt)
    deliverer.start()
    stop = threading.Event()
    threading.Thread(target=_notify_forever, args=(core, notifiers, stop), name="staff-notifier", daemon=True).start()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if teams_app is not None:
            if slack_app is not None and use_http:
                _events_api_in_background(slack_app, settings.slack.signing_secret, host, slack_port)
            elif slack_app is not None:
                _socket_mode_in_background(slack_app, settings.slack.app_token)
            click.echo(f"PolicyBot listening for Teams on http://{host}:{port}/api/messages")
            sys.stdout.flush()
            teams_app.run(host, port)
        elif use_http:
            from bot.slack.http import EVENTS_PATH, make_http_server

            server = make_http_server(slack_app, settings.slack.signing_secret, host, port)
            click.echo(f"PolicyBot listening on http://{host}:{server.server_address[1]}{EVENTS_PATH}")
            sys.stdout.flush()
            try:
                server.serve_forever()
            finally:
                server.server_close()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            click.echo("PolicyBot connecting to Slack over Socket Mode")
            sys.stdout.flush()
            SocketModeHandler(slack_app, settings.slack.app_token).start()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        deliverer.stop()


def _events_api_in_background(app, signing_secret: str, host: str, port: int) -> None:
    from bot.slack.http import EVENTS_PATH, make_http_server

    server = make_http_server(app, signing_secret, host, port)
    click.echo(f"PolicyBot listening on http://{host}:{server.server_address[1]}{EVENTS_PATH}")
    sys.stdout.flush()
    threading.Thread(target=server.serve_forever, name="slack-events-api", daemon=True).start()


def _socket_mode_in_background(app, token: str) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, token)
    threading.Thread(target=handler.connect, name="slack-socket-mode", daemon=True).start()


def _notify_forever(core, notifiers: dict, stop: threading.Event) -> None:
    """Tell staff about concerns recorded before a crash that never told them (their reply was lost)."""
    wait = 1.0
    while not stop.wait(wait):
        wait = NOTIFY_EVERY_SECONDS
        try:
            for reply_to, reply, escalation_id in core.unnotified():
                send = notifiers.get(reply_to.get("platform"))
                if send is not None and send(reply_to, reply):
                    core.escalations.mark_notified(escalation_id)
        except Exception:
            log.exception("could not tell staff about earlier concerns; trying again later")


def _start_watcher(rt) -> None:
    from index.watch import watch_policies

    def report(change_report) -> None:
        log.info("policies changed; index rebuilt: %s", "changes published" if change_report.has_changes else "no changes")

    threading.Thread(target=watch_policies, args=(rt, report), kwargs={"on_error": lambda exc: log.error("reindex failed: %s", exc)},
                     name="policy-watcher", daemon=True).start()

