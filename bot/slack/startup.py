"""Before serving Slack: the tokens, the network, the scopes and the alert channels, each problem in one line.

Fatal problems (no network, a DNS failure, an invalid, revoked or wrong kind of
token, a missing scope) raise `StartupError` with what to do; a channel the bot
is not in, or a route with no channel, is a warning, so that the bot still
answers while the admin fixes it, and `status` shows it too.
"""

from __future__ import annotations

import logging
import socket
import urllib.error

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import ChannelRoutes, Settings
from index.errors import PolicyBotError

log = logging.getLogger(__name__)

# what the bot calls (deploy/slack-manifest.yaml asks for these)
REQUIRED_SCOPES = ("app_mentions:read", "chat:write", "commands", "im:history", "im:read", "im:write", "reactions:write",
                   "channels:read", "groups:read")
TOKEN_KINDS = {"xoxb-": "a bot token", "xoxp-": "a user token", "xapp-": "an app-level token", "xoxe": "a refresh token"}


class StartupError(PolicyBotError):
    pass


def check_tokens(settings: Settings, socket_mode: bool) -> None:
    bot = settings.slack.bot_token or ""
    if not bot.startswith("xoxb-"):
        raise StartupError(f"SLACK_BOT_TOKEN is {_kind(bot)}, not a bot token (xoxb-...): copy the Bot User OAuth Token from "
                           "OAuth & Permissions in the Slack app's settings")
    if socket_mode and not (settings.slack.app_token or "").startswith("xapp-"):
        raise StartupError(f"SLACK_APP_TOKEN is {_kind(settings.slack.app_token or '')}, not an app-level token (xapp-...): create one "
                           "with connections:write under Basic Information > App-Level Tokens, or use --http")


def check_connection(client: WebClient, app_token: str | None = None) -> dict:
    """auth.test with the bot token (and apps.connections.open with the app token): the workspace and bot's ids."""
    response = _call(lambda: client.auth_test(), "SLACK_BOT_TOKEN", client.base_url)
    granted = set(filter(None, (response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes") or "").split(",")))
    missing = [s for s in REQUIRED_SCOPES if granted and s not in granted]
    if missing:
        raise StartupError(f"The Slack app lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)}: add "
                           f"{'them' if len(missing) > 1 else 'it'} under OAuth & Permissions (see deploy/slack-manifest.yaml) and reinstall the app")
    if app_token:
        _call(lambda: WebClient(token=app_token, base_url=client.base_url, timeout=10).apps_connections_open(app_token=app_token),
              "SLACK_APP_TOKEN", client.base_url)
    return {"team": response.get("team_id"), "bot_user": response.get("user_id")}


def channel_warnings(client: WebClient, settings: Settings, schools: list[str]) -> list[str]:
    """One line for each configured channel the bot cannot post in, with the fix."""
    out = []
    seen: set[str] = set()
    places = [("escalation.dsl_channel", settings.escalation.dsl_channel)]
    for school in schools:
        routes: ChannelRoutes = settings.routes(school).on("slack")
        for key in ChannelRoutes.model_fields:
            places.append((f"schools.{school}.{key}", getattr(routes, key)))
    for where, channel in places:
        if not channel or (where, channel) in seen:
            continue
        seen.add((where, channel))
        try:
            info = client.conversations_info(channel=channel).get("channel") or {}
        except SlackApiError as exc:
            code = exc.response.get("error") if exc.response is not None else "error"
            out.append(f"{where} {channel}: Slack says {code}: check the id (the channel's name > About > Channel ID) and "
                       "invite the bot (/invite @PolicyBot)")
            continue
        except Exception as exc:  # the network failed after auth.test worked: the alert worker retries anyway
            out.append(f"{where} {channel}: could not check it ({type(exc).__name__})")
            continue
        if not info.get("is_member") and not info.get("is_im"):
            out.append(f"{where} {channel} (#{info.get('name', '?')}): the bot is not in this channel, so alerts cannot be posted; "
                       "type /invite @PolicyBot in the channel")
    return out


def _call(call, token_name: str, base_url: str):
    quiet = logging.getLogger("slack_sdk.web.base_client")
    level = quiet.level
    if not log.isEnabledFor(logging.DEBUG):  # slack_sdk logs each failed attempt as an ERROR line of its own
        quiet.setLevel(logging.CRITICAL)
    try:
        return call()
    except SlackApiError as exc:
        code = (exc.response.get("error") if exc.response is not None else None) or "error"
        if code in ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"):
            raise StartupError(f"{token_name} was refused by Slack ({code}): reinstall the app and copy its new token") from exc
        if code == "missing_scope":
            raise StartupError(f"{token_name} lacks a scope Slack needs here ({code}): check the app's scopes against "
                               "deploy/slack-manifest.yaml and reinstall it") from exc
        raise StartupError(f"Slack refused {token_name} ({code}); check the app's settings") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            raise StartupError(f"Cannot resolve Slack's address ({base_url}): check this server's DNS and network") from exc
        raise StartupError(f"Cannot reach Slack at {base_url} ({reason}): check the network, a proxy, or SLACK_API_URL") from exc
    except (TimeoutError, socket.timeout, ConnectionError, OSError) as exc:
        raise StartupError(f"Cannot reach Slack at {base_url} ({type(exc).__name__}): check the network or a proxy") from exc
    finally:
        quiet.setLevel(level)


def _kind(token: str) -> str:
    if not token:
        return "empty"
    return next((kind for prefix, kind in TOKEN_KINDS.items() if token.startswith(prefix)), "not a Slack token")
