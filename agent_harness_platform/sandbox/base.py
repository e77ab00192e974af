"""The sandbox seam: one protocol, several backends.

A :class:`Sandbox` is a long-lived shell. ``run`` executes one command in it and returns an
:class:`ExecResult`; the working directory, variables and functions persist between commands,
so the ``cd`` an agent does in turn 1 still holds in turn 2. Backends live in sibling modules
named by mechanism (``bwrap``, ``docker``, ``host``) and take a :class:`SandboxConfig`, never
the Profile: the policy is derived from the profile in one place (``agent_harness_platform``'s
``sandbox_config_for``) and the backend only enforces it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_LINE_CHARS",
    "MAX_OUTPUT_BYTES",
    "MAX_TIMEOUT",
    "TRUNCATION_MARKER",
    "ExecResult",
    "ProxyEndpoint",
    "Sandbox",
    "SandboxConfig",
    "cap_output",
    "new_sandbox_id",
]

DEFAULT_TIMEOUT = 120.0
"""Seconds a command may run when the caller gives no timeout."""

MAX_TIMEOUT = 600.0
"""The largest per-command timeout a caller may ask for."""

MAX_OUTPUT_BYTES = 64 * 1024
"""Default cap on each of stdout and stderr returned for one command."""

MAX_LINE_CHARS = 2000
"""Default cap on one line of output."""

TRUNCATION_MARKER = "[... output truncated by the sandbox: {omitted} more bytes ...]"
"""Appended where output was cut; ``{omitted}`` is filled with the number of bytes dropped."""


def new_sandbox_id() -> str:
    """A short random id for logs and resource names."""
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class ExecResult:
    """What one command did.

    ``stdout``/``stderr`` are decoded text, already capped; ``truncated`` says whether any cap
    cut them. ``cwd`` is the shell's working directory after the command. ``restarted`` is
    true when the previous shell had died and this command ran in a fresh one.
    """

    exit_code: int
    stdout: str
    stderr: str
    cwd: str
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    restarted: bool = False


@dataclass(frozen=True)
class ProxyEndpoint:
    """How a sandbox reaches the credential proxy, and nothing else.

    ``socket_path`` is a host Unix socket that leads to the proxy; the backend makes it
    reachable inside the sandbox as ``127.0.0.1:inside_port`` (bind mount + forwarder).
    ``ca_cert`` is the PEM the sandbox must trust for intercepted HTTPS. ``env`` are extra
    variables to set inside (``HTTP_PROXY`` etc.); they hold the per-run proxy token, never
    a real secret.
    """

    socket_path: Path
    ca_cert: Path | None = None
    inside_port: int = 3128
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SandboxConfig:
    """The policy one sandbox enforces. Derived from the Profile; frozen."""

    backend: str = "auto"
    """``bwrap``, ``docker``, ``host`` or ``auto`` (docker if usable, else bwrap; never host)."""
    memory_mb: int = 512
    pids_max: int = 256
    cpu_quota: float = 1.0
    """CPUs the sandbox may use (e.g. 0.5 = half a core)."""
    tmp_size_mb: int = 64
    default_timeout: float = DEFAULT_TIMEOUT
    max_output_bytes: int = MAX_OUTPUT_BYTES
    max_line_chars: int = MAX_LINE_CHARS
    env: dict[str, str] = field(default_factory=dict)
    """Extra variables set inside; everything else from the host is cleared."""
    workspace: Path | None = None
    """Host directory mounted at /workspace; a fresh temp dir when None."""
    proxy: ProxyEndpoint | None = None
    """None: no network at all. Set: the proxy is the only thing reachable."""
    image: str = "agent-harness-sandbox:latest"
    """Docker image (docker backend only)."""


@runtime_checkable
class Sandbox(Protocol):
    """A long-lived isolated shell. Use as a context manager, or call start()/close()."""

    id: str
    backend: str

    def start(self) -> None:
        """Start the shell. Idempotent."""

    def run(self, command: str, *, timeout: float | None = None) -> ExecResult:
        """Run one command in the persistent shell and return what it did."""

    def close(self) -> None:
        """Stop the shell and release every resource. Idempotent."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def cap_output(data: bytes, *, max_bytes: int, max_line_chars: int) -> tuple[str, bool]:
    """Decode ``data`` and cap it per line and in total.

    Returns ``(text, truncated)``. Cut places carry a visible marker so neither the model nor
    a person mistakes a capped output for the whole of it.
    """
    truncated = False
    omitted = 0
    if len(data) > max_bytes:
        omitted = len(data) - max_bytes
        data = data[:max_bytes]
        truncated = True
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if len(line) > max_line_chars:
            lines[i] = (
                line[:max_line_chars] + f" [... line cut: {len(line) - max_line_chars} more chars]"
            )
            truncated = True
    text = "\n".join(lines)
    if omitted:
        text += ("\n" if not text.endswith("\n") else "") + TRUNCATION_MARKER.format(
            omitted=omitted
        )
    return text, truncated
