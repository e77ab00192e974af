"""Per-sandbox cgroups: memory, pids and CPU limits, and a handle to kill everything inside.

Each sandbox gets ``ahp/<id>`` under the cgroup this process already lives in (for every
controller on cgroup v1, once on the unified v2 tree), so the sandbox also counts against any
limit the operator put on the agent itself instead of escaping it. The limits hold for every
process the sandbox starts, since the launcher enters the cgroup before ``bwrap`` runs.
Writing cgroups needs root (or a delegated v2 subtree); where that is not possible the
sandbox runs without these limits, and :func:`create_cgroup` says so in one warning line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import _proc

__all__ = ["CGROUP_ROOT", "SandboxCgroup", "create_cgroup"]

logger = logging.getLogger("agent_harness_platform.sandbox")

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000


@dataclass
class SandboxCgroup:
    """The cgroup directories of one sandbox (one per v1 controller, or one v2 directory)."""

    dirs: list[Path]
    version: int
    removed: bool = field(default=False)

    @property
    def procs_files(self) -> list[Path]:
        """Where the launcher writes its pid to enter the cgroup(s)."""
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        """Every process currently in the sandbox's cgroup(s)."""
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in procs.read_text().split())
        return found

    def remove(self, timeout: float = 3.0) -> None:
        """Kill whatever is still inside, then delete the directories. Idempotent."""
        if self.removed:
            return
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if left:
                _proc.send_signal(left, signal.SIGKILL)
            pending = []
            for d in self.dirs:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    pending.append(d)
            self.dirs = pending
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if self.dirs:
            logger.warning(
                "[sandbox] Could not remove cgroup %s (processes still inside)",
                ", ".join(map(str, self.dirs)),
            )
        self.removed = True


def _own_paths() -> dict[str, str]:
    """controller name (or "" for v2) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _setup_v1(name: str, memory_mb: int, pids_max: int, cpu_quota: float) -> SandboxCgroup:
    own = _own_paths()
    made = SandboxCgroup(dirs=[], version=1)
    try:
        for controller in _V1_CONTROLLERS:
            mount = CGROUP_ROOT / controller
            if controller not in own or not mount.is_dir():
                raise OSError(f"cgroup v1 controller {controller!r} is not mounted")
            base = mount / own[controller].lstrip("/") / "ahp"
            base.mkdir(exist_ok=True)
            d = base / name
            d.mkdir()
            made.dirs.append(d)
            if controller == "memory":
                limit = str(memory_mb * 1024 * 1024)
                _write(d / "memory.limit_in_bytes", limit)
                # With swap, memory+swap must be capped too or the limit only moves pages.
                with contextlib.suppress(OSError):
                    _write(d / "memory.memsw.limit_in_bytes", limit)
            elif controller == "pids":
                _write(d / "pids.max", str(pids_max))
            elif cpu_quota > 0:
                _write(d / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(max(1000, int(cpu_quota * _CPU_PERIOD_US))))
    except OSError:
        made.remove(timeout=0.5)
        raise
    return made


def _setup_v2(name: str, memory_mb: int, pids_max: int, cpu_quota: float) -> SandboxCgroup:
    own = _own_paths().get("", "/")
    parent = CGROUP_ROOT / own.lstrip("/")
    base = parent / "ahp"
    base.mkdir(exist_ok=True)
    wanted = "+memory +pids +cpu"
    # Controllers must be enabled on every level above the sandbox's directory.
    for level in (parent, base):
        available = (level / "cgroup.controllers").read_text().split()
        missing = {"memory", "pids", "cpu"} - set(available)
        if missing:
            raise OSError(f"cgroup v2 controllers {sorted(missing)} not available at {level}")
        enabled = (level / "cgroup.subtree_control").read_text().split()
        if not {"memory", "pids", "cpu"} <= set(enabled):
            _write(level / "cgroup.subtree_control", wanted)
    d = base / name
    d.mkdir()
    made = SandboxCgroup(dirs=[d], version=2)
    try:
        _write(d / "memory.max", str(memory_mb * 1024 * 1024))
        with contextlib.suppress(OSError):
            _write(d / "memory.swap.max", "0")
        _write(d / "pids.max", str(pids_max))
        if cpu_quota > 0:
            _write(d / "cpu.max", f"{max(1000, int(cpu_quota * _CPU_PERIOD_US))} {_CPU_PERIOD_US}")
    except OSError:
        made.remove(timeout=0.5)
        raise
    return made


def create_cgroup(
    name: str, *, memory_mb: int, pids_max: int, cpu_quota: float
) -> SandboxCgroup | None:
    """Create and configure the sandbox's cgroup, or warn and return None where impossible."""
    unified = (CGROUP_ROOT / "cgroup.controllers").exists()
    try:
        if os.geteuid() != 0 and not unified:
            raise PermissionError("cgroup v1 needs root")
        setup = _setup_v2 if unified else _setup_v1
        return setup(name, memory_mb, pids_max, cpu_quota)
    except (OSError, ValueError) as exc:
        logger.warning(
            "[sandbox] cgroup limits unavailable (%s); memory, pids and cpu of sandbox %s "
            "are not limited",
            exc,
            name,
        )
        return None
