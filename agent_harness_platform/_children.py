"""Child processes that must not outlive the run that started them."""

from __future__ import annotations

import ctypes
import signal

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for a child: SIGKILL it when its parent dies (Linux ``prctl``).

    A run killed with ``kill -9`` gets no chance to stop its helpers (proxy forwarder, mock
    server); this makes the kernel do it. Grandchildren need their own guard.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
