"""Errors raised by the platform.

Three families, so callers can tell whose move it is:

* :class:`ConfigurationError`: the operator's configuration is wrong (a profile, a missing
  secret, a tool that is not installed). The message names the value, the rule and the fix.
* :class:`ApprovalRejected`: control flow (a person said no).
* :class:`HarnessRuntimeError`: something failed while running; carries a machine-readable
  ``code`` so scripts can branch on it without parsing prose.

Messages never contain a secret or raw command output that might hold one.
"""

from __future__ import annotations

__all__ = [
    "ApprovalRejected",
    "ConfigurationError",
    "HarnessError",
    "HarnessRuntimeError",
    "ProxyError",
    "SandboxError",
    "SandboxUnavailable",
]


class HarnessError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigurationError(HarnessError, ValueError):
    """The configuration is wrong; the message says what to change."""


class SandboxUnavailable(ConfigurationError):
    """A sandbox backend cannot be used on this machine (missing binary, no engine, ...)."""


class ApprovalRejected(HarnessError):
    """A person rejected an approval point."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class HarnessRuntimeError(HarnessError, RuntimeError):
    """A runtime failure with a machine-readable ``code``."""

    code: str = "runtime_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class SandboxError(HarnessRuntimeError):
    """The sandbox failed to start, or failed underneath a command."""

    code = "sandbox_error"


class ProxyError(HarnessRuntimeError):
    """The credential proxy failed to start or stopped answering."""

    code = "proxy_error"
