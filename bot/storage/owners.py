"""Who holds a claim: a process on a host. A claim whose process is gone from this host is free at once;
one held on another host (another replica) is free only when its lease runs out."""

from __future__ import annotations

import os
import socket
import uuid


def process_owner() -> str:
    """This process, as claims name it: host, pid, and a nonce (a later process may reuse the pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_gone(owner: str | None) -> bool:
    """Whether `owner` was a process on this host that no longer runs (a crash, a kill -9)."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid, _ = owner.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers signal 0; its state says it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return False
