"""The sandbox rail: a persistent, isolated shell for the agent's commands.

:func:`open_sandbox` picks a backend (``AHP_SANDBOX`` overrides ``SandboxConfig.backend``)
and returns it unstarted; use it as a context manager::

    with open_sandbox(SandboxConfig()) as sandbox:
        sandbox.run("cd /tmp")
        print(sandbox.run("pwd").stdout)   # /tmp

Backends: ``bwrap`` (default on Linux), ``docker`` (when an engine and the image are there),
``host`` (no isolation; only when asked for by name and allowed with ``allow_host=True``).
"""

from __future__ import annotations

import os

from ..errors import ConfigurationError, SandboxUnavailable
from ._layout import PROXY_CA, PROXY_SOCKET, WORKSPACE
from ._shell import TIMEOUT_EXIT_CODE
from .base import (
    DEFAULT_TIMEOUT,
    MAX_LINE_CHARS,
    MAX_OUTPUT_BYTES,
    MAX_TIMEOUT,
    TRUNCATION_MARKER,
    ExecResult,
    ProxyEndpoint,
    Sandbox,
    SandboxConfig,
    cap_output,
    new_sandbox_id,
)
from .bwrap import SANDBOX_USER, BwrapSandbox
from .docker import DockerSandbox, build_command, docker_problem
from .host import HostSandbox

__all__ = [
    "BACKENDS",
    "BACKEND_ENV_VAR",
    "DEFAULT_TIMEOUT",
    "MAX_LINE_CHARS",
    "MAX_OUTPUT_BYTES",
    "MAX_TIMEOUT",
    "PROXY_CA",
    "PROXY_SOCKET",
    "SANDBOX_USER",
    "TIMEOUT_EXIT_CODE",
    "TRUNCATION_MARKER",
    "WORKSPACE",
    "BwrapSandbox",
    "DockerSandbox",
    "ExecResult",
    "HostSandbox",
    "ProxyEndpoint",
    "Sandbox",
    "SandboxConfig",
    "cap_output",
    "new_sandbox_id",
    "open_sandbox",
    "select_backend",
]

BACKENDS = ("auto", "bwrap", "docker", "host")
"""Values ``SandboxConfig.backend`` and ``AHP_SANDBOX`` accept."""

BACKEND_ENV_VAR = "AHP_SANDBOX"
"""Environment variable that overrides ``SandboxConfig.backend``."""


def select_backend(config: SandboxConfig) -> str:
    """The backend to use: ``AHP_SANDBOX`` if set, else ``config.backend``; ``auto`` resolved.

    ``auto`` means docker when an engine is reachable and the image exists, else bwrap; it
    never means host.
    """
    override = os.environ.get(BACKEND_ENV_VAR, "").strip().lower()
    requested = override or config.backend.strip().lower()
    if requested not in BACKENDS:
        source = f"{BACKEND_ENV_VAR}={override}" if override else f"backend={config.backend!r}"
        raise ConfigurationError(
            f"unknown sandbox backend ({source}); use one of {', '.join(BACKENDS)}"
        )
    if requested == "auto":
        return "docker" if docker_problem(config.image) is None else "bwrap"
    return requested


def open_sandbox(config: SandboxConfig, *, allow_host: bool = False) -> Sandbox:
    """Create (but not start) the sandbox :func:`select_backend` picks.

    ``host`` runs commands without any isolation and is refused unless ``allow_host`` is
    true (stage 1). An explicit ``docker`` that cannot work raises
    :class:`~agent_harness_platform.errors.SandboxUnavailable` with the fix.
    """
    backend = select_backend(config)
    if backend == "host":
        if not allow_host:
            raise ConfigurationError(
                "the host sandbox backend runs commands with no isolation and is only for "
                "stage 1: pass allow_host=True to open_sandbox, or choose bwrap or docker "
                f"(SandboxConfig.backend or {BACKEND_ENV_VAR})"
            )
        return HostSandbox(config)
    if backend == "docker":
        problem = docker_problem(config.image)
        if problem is not None:
            build = build_command(config.image)
            hint = "" if build in problem else f"; the image is built with `{build}`"
            raise SandboxUnavailable(f"the docker sandbox backend cannot be used: {problem}{hint}")
        return DockerSandbox(config)
    return BwrapSandbox(config)
