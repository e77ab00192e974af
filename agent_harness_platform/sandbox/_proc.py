"""Reading the process tree from ``/proc`` and signalling parts of it.

The shell engine needs a few facts the kernel only publishes in ``/proc``: a process's
children, its process group, and its pid as seen inside a pid namespace (``NSpid``), which is
how the host finds the sandboxed shell that reported ``$$`` from inside. Everything here is
best effort: processes come and go while we look, so a vanished pid is skipped, not an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ProcInfo",
    "children",
    "descendants",
    "inner_pid",
    "proc_info",
    "send_signal",
    "session_members",
    "start_time",
    "wait_gone",
]


@dataclass(frozen=True)
class ProcInfo:
    """The ``/proc/<pid>/stat`` fields the engine uses (pids as the host sees them)."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str


def proc_info(pid: int) -> ProcInfo | None:
    """Parent, process group, session and state of ``pid``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", errors="replace")
    except OSError:
        return None
    # The command name sits in parentheses and may itself contain spaces or parentheses.
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 4:
        return None
    return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0])


def start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot): tells a process from a later one that
    reused its pid. None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's), or [] when it is gone."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.extend(int(x) for x in fh.read().split())
        except FileNotFoundError:
            # Kernels without CONFIG_PROC_CHILDREN: fall back to a scan of every process.
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue
            return [p for p in _all_pids() if (info := proc_info(p)) and info.ppid == pid]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, parents before children."""
    order: list[int] = []
    seen = {pid}
    queue = [pid]
    while queue:
        current = queue.pop(0)
        for child in children(current):
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def session_members(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (catches daemons that left the tree)."""
    return [p for p in _all_pids() if (info := proc_info(p)) and info.sid == sid]


def inner_pid(pid: int) -> int | None:
    """The pid of ``pid`` in its innermost pid namespace (the ``$$`` its shell reports)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return pid


def send_signal(pids: Iterable[int], sig: signal.Signals) -> int:
    """Send ``sig`` to each pid that still exists; returns how many were signalled."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


def _running(pid: int) -> bool:
    info = proc_info(pid)
    return info is not None and info.state not in ("Z", "X")


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` runs any more; returns those still running at the end."""
    remaining = [p for p in pids if _running(p)]
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.005)
        remaining = [p for p in remaining if _running(p)]
    return remaining
