"""What every `policybot` command shares: the runtime built from the settings, and errors as one line."""

from __future__ import annotations

import json
import os
import sys

import click

from index.errors import PolicyBotError


def runtime(ctx: click.Context):
    """The runtime for this invocation, built once from --config, --policies, --data, --model and the environment."""
    from bot.runtime import Runtime
    from bot.settings import load_settings

    obj = ctx.find_root().obj
    if "runtime" not in obj:
        settings = load_settings(obj.get("config"), policies_dir=obj.get("policies"), data_dir=obj.get("data"), model=obj.get("model"))
        obj["runtime"] = Runtime(settings)
    return obj["runtime"]


def debug() -> bool:
    """POLICYBOT_DEBUG (or POLICYBOT_RAISE, as tests set it) shows tracebacks instead of one line."""
    return bool(os.environ.get("POLICYBOT_DEBUG") or os.environ.get("POLICYBOT_RAISE"))


class Group(click.Group):
    """Library errors become one clear line and exit code 1 (a JSON object with --json); POLICYBOT_DEBUG shows all."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PolicyBotError as exc:
            if debug():
                raise
            if ctx.find_root().obj.get("json"):
                click.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
            else:
                click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
