"""Lifecycle shared by the backends: workspace, start/close, log lines, context manager.

A backend subclasses :class:`ShellSandbox` and supplies the mechanism: ``_prepare`` (make
resources before the first shell), ``_spawn`` (start one shell, return its channel) and
``_release`` (undo ``_prepare``). Start, restart, timeouts and output live in the engine.

Each sandbox keeps its files in a state directory ``ahp-sandbox-<id>-*`` with an ``owner``
record (pid, start time, cgroup directories). Processes inside die with their parent, but a
parent killed outright cannot delete its files; the next sandbox started in the same place
removes what dead owners left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from ..errors import ConfigurationError, SandboxError
from . import _proc
from ._cgroups import CGROUP_ROOT, SandboxCgroup
from ._shell import ShellChannel, ShellEngine
from .base import ExecResult, SandboxConfig, new_sandbox_id

__all__ = ["ShellSandbox", "remove_tree", "sweep_stale"]

_OWNER = "owner"
_PREFIX = "ahp-sandbox-"

logger = logging.getLogger("agent_harness_platform.sandbox")


def remove_tree(path: Path) -> None:
    """Delete ``path`` even where the sandbox left unwritable directories behind.

    Permissions are only ever loosened on ``path`` and what is inside it: ``rmtree`` also
    reports errors on ``path`` itself, and its parent (``/tmp``) must never be touched.
    """
    root = os.path.abspath(path)

    def inside(candidate: str) -> bool:
        return os.path.commonpath([root, os.path.abspath(candidate)]) == root

    def fix_and_retry(func, target, _exc_info):  # type: ignore[no-untyped-def]
        with contextlib.suppress(OSError):
            parent = os.path.dirname(target)
            if inside(parent):
                os.chmod(parent, stat.S_IRWXU)
            if inside(target) and os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            func(target)

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path, onerror=fix_and_retry)
    if os.path.lexists(path):
        logger.warning("[sandbox] Could not remove %s", path)


def sweep_stale(parent: Path) -> None:
    """Delete state directories (and their cgroups) whose owning process is gone."""
    try:
        candidates = list(parent.glob(f"{_PREFIX}*"))
    except OSError:
        return
    for state in candidates:
        try:
            if state.is_symlink() or state.stat().st_uid != os.geteuid():
                continue
            record = json.loads((state / _OWNER).read_text())
            pid, started = int(record["pid"]), str(record["start"])
            cgroups = [Path(d) for d in record["cgroups"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or still being set up
        if _proc.start_time(pid) == started:
            continue  # the owner still runs
        sandbox_id = state.name[len(_PREFIX) :].split("-")[0]
        # Only ever touch <cgroup root>/.../ahp/<this id>, whatever the record says.
        mine = [
            d
            for d in cgroups
            if d.name == sandbox_id and d.parent.name == "ahp" and d.is_relative_to(CGROUP_ROOT)
        ]
        if mine:
            SandboxCgroup(dirs=mine, version=0).remove(timeout=1.0)
        remove_tree(state)
        logger.info("[sandbox] Removed what crashed sandbox %s left behind", sandbox_id)


class ShellSandbox:
    """A :class:`~.base.Sandbox` built on the persistent-shell engine."""

    backend = ""

    def __init__(self, config: SandboxConfig) -> None:
        if config.workspace is not None and not Path(config.workspace).is_dir():
            raise ConfigurationError(
                f"sandbox workspace {config.workspace} is not a directory; create it or leave "
                "SandboxConfig.workspace unset for a fresh temporary one"
            )
        self.config = config
        self.id = new_sandbox_id()
        self._engine = ShellEngine(self._spawn, config)
        self._lock = threading.Lock()
        self._state_dir: Path | None = None
        self._workspace: Path | None = None
        self._started = False
        self._closed = False

    @property
    def workspace(self) -> Path | None:
        """Host directory that holds the sandbox's files (None before start)."""
        return self._workspace

    @property
    def identity(self) -> str:
        """Who commands run as, as seen from inside (for the start line)."""
        return "hostname sandbox, user sandbox"

    @property
    def running(self) -> bool:
        """True while the sandbox's shell is up."""
        return self._started and not self._closed and self._engine.running

    def start(self) -> None:
        """Start the sandbox and its shell. Idempotent."""
        with self._lock:
            if self._closed:
                raise SandboxError(f"sandbox {self.id} is closed", code="sandbox_closed")
            if self._started:
                return
            try:
                parent = self._state_parent() or tempfile.gettempdir()
                sweep_stale(Path(parent))
                self._state_dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{self.id}-", dir=parent))
                self._workspace = self._make_workspace(self._state_dir)
                self._prepare()
                self._write_owner(self._state_dir)
                self._engine.start()
            except BaseException:
                self._cleanup()
                self._closed = True
                raise
            self._started = True
        logger.info(
            "[sandbox] Started %s sandbox %s (workspace %s, %s)",
            self.backend,
            self.id,
            self._workspace,
            self.identity,
        )

    def run(self, command: str, *, timeout: float | None = None) -> ExecResult:
        """Run one command in the persistent shell (starting the sandbox if needed)."""
        if not self._started:
            self.start()
        return self._engine.run(command, timeout=timeout)

    def close(self) -> None:
        """Stop the shell, kill what it started and release every resource. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if started:
            logger.info("[sandbox] Stopping %s sandbox %s", self.backend, self.id)
        self._cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} workspace={self._workspace}>"

    # -- for backends ------------------------------------------------------------------------

    def _state_parent(self) -> str | None:
        """Where the per-sandbox directory (workspace, generated files) is created."""
        return None

    def _write_owner(self, state_dir: Path) -> None:
        record = {
            "pid": os.getpid(),
            "start": _proc.start_time(os.getpid()),
            "cgroups": [str(d) for d in self._cgroup_dirs()],
        }
        (state_dir / _OWNER).write_text(json.dumps(record))

    def _cgroup_dirs(self) -> list[Path]:
        """cgroup directories this sandbox created (removed if its process crashes)."""
        return []

    def _make_workspace(self, state_dir: Path) -> Path:
        """The host directory to use as the workspace (the caller's, or a fresh one)."""
        if self.config.workspace is not None:
            return Path(self.config.workspace).resolve()
        workspace = state_dir / "workspace"
        workspace.mkdir(mode=0o700)
        return workspace

    def _prepare(self) -> None:
        """Create what the shells need before the first one starts."""

    def _spawn(self) -> ShellChannel:
        raise NotImplementedError

    def _release(self) -> None:
        """Undo :meth:`_prepare`; must cope with a partial one."""

    def _cleanup(self) -> None:
        try:
            self._engine.close()
        finally:
            try:
                self._release()
            finally:
                if self._state_dir is not None:
                    remove_tree(self._state_dir)
                    self._state_dir = None
