"""The `policybot` command: one module per group of commands, all over the same runtime (bot/runtime.py)."""

from bot.cli.main import main

__all__ = ["main"]
