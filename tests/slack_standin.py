"""Try the Slack side of PolicyBot on one machine, with no Slack workspace: the tests' Slack stand-in, by hand.

    .venv/bin/python -m tests.slack_standin serve --port 8901        # Slack's Web API on 127.0.0.1:8901; prints each call
    .venv/bin/python -m tests.slack_standin send "can i follow old y11s on insta now theyve left" \\
        --bot http://127.0.0.1:3000/slack/events --secret local-secret   # a DM from a member of staff, signed as Slack signs

Run the bot between them with `SLACK_API_URL=http://127.0.0.1:8901/api/ SLACK_BOT_TOKEN=xoxb-local
SLACK_SIGNING_SECRET=local-secret policybot serve --http --port 3000` (README, "Trying Slack without a workspace").
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import uuid

import click

from tests.slack_api_server import TEAM_ID, SlackAPIServer, post_signed


@click.group()
def main():
    """The Slack stand-in the tests use, for trying the bot by hand."""


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8901, show_default=True)
@click.option("--for", "seconds", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
def serve(port, seconds):
    """Answer Slack's Web API on 127.0.0.1 and print one line per call the bot makes."""
    server = SlackAPIServer(port=port).start()
    click.echo(f"Slack stand-in listening on {server.base_url}", err=False)
    shown = 0
    stop_at = time.monotonic() + seconds if seconds else None
    try:
        while stop_at is None or time.monotonic() < stop_at:
            calls = server.calls()
            for call in calls[shown:]:
                channel = call.body.get("channel") or ""
                first = call.text.splitlines()[0] if call.text else ""
                click.echo(f"{call.method} {channel} {first}".rstrip(), err=False)
            shown = len(calls)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command()
@click.argument("text")
@click.option("--bot", "url", default="http://127.0.0.1:3000/slack/events", show_default=True, help="The bot's /slack/events.")
@click.option("--secret", required=True, help="The bot's SLACK_SIGNING_SECRET.")
@click.option("--user", default="USTAFF", show_default=True, help="Who sends it.")
@click.option("--channel", default="DSTAFF", show_default=True, help="Where: a D... id is a direct message.")
def send(text, url, secret, user, channel):
    """Send one message to the bot as Slack's Events API would, signed with the signing secret."""
    ts = f"{time.time():.6f}"
    event = {"type": "message", "channel_type": "im" if channel.startswith("D") else "channel", "user": user,
             "text": text, "ts": ts, "channel": channel, "event_ts": ts}
    body = json.dumps({"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0001", "type": "event_callback",
                       "event_id": "Ev" + uuid.uuid4().hex[:10].upper(), "event_time": int(time.time()), "event": event,
                       "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}]})
    status, reply = post_signed(url, body, secret)
    click.echo(f"HTTP {status} from the bot" + (f": {reply}" if status >= 400 else "; its reply goes to the stand-in"))
    if status >= 400:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
