"""Rebuild and publish the index when files in the policies folder change (`policybot serve --watch`).

    watch_policies(runtime, on_report)   # blocks; call it in a daemon thread

Changes are debounced (an admin copying five files triggers one build). A failed
build is reported through `on_error` and the bot keeps serving the current index.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from index.errors import PolicyBotError

log = logging.getLogger(__name__)

IGNORED_PREFIXES = (".", "~$")  # editor temp files and Word lock files


def watch_policies(runtime, on_report: Callable, *, on_error: Callable[[Exception], None] | None = None,
                   stop_event: threading.Event | None = None, debounce_ms: int = 1500) -> None:
    """Watch `runtime.settings.policies_dir`; after each burst of changes run `runtime.build_index()`
    and pass the ChangeReport to `on_report` (or the error to `on_error`). Returns when `stop_event` is set."""
    from watchfiles import watch

    folder = runtime.settings.policies_dir
    log.info("watching %s for policy changes", folder)
    for changes in watch(folder, debounce=debounce_ms, stop_event=stop_event, watch_filter=_interesting, raise_interrupt=False):
        log.info("%d policy file changes; rebuilding", len(changes))
        try:
            report = runtime.build_index(progress=False)
        except PolicyBotError as exc:
            log.warning("rebuild failed; still serving the current index: %s", exc)
            if on_error is not None:
                on_error(exc)
            continue
        on_report(report)


def _interesting(change, path: str) -> bool:
    from pathlib import Path

    name = Path(path).name
    return not name.startswith(IGNORED_PREFIXES) and not name.endswith(("~", ".tmp", ".swp"))
