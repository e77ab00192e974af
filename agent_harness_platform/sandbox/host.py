"""The host backend: the persistent shell with no isolation at all.

It defends against nothing. Commands run as the current user, with its files, its network
and its processes in reach; only the environment is trimmed (so a key in the operator's shell
does not leak into a command by accident) and the shell starts in a temporary workspace. It
exists for stage 1 and as the baseline of the benchmark, and is only used when asked for by
name (``open_sandbox(..., allow_host=True)``).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess

from ..errors import ConfigurationError, SandboxUnavailable
from ._lifecycle import ShellSandbox
from ._shell import BASH_ARGV, LocalShellChannel
from .base import SandboxConfig

__all__ = ["HostSandbox"]

_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostSandbox(ShellSandbox):
    """A persistent bash on the host, in a workspace directory. No isolation.

    Same protocol and behaviour as the isolated backends (timeouts, output caps, restart),
    so stage 1 code runs unchanged on them later. ``config.proxy`` is refused: on the host
    the proxy would be one route among many, which is worse than none.
    """

    backend = "host"

    @property
    def identity(self) -> str:
        # Unisolated: say plainly that commands run as this machine's own user.
        return f"hostname {socket.gethostname()}, user {getpass.getuser()}, NOT isolated"

    def __init__(self, config: SandboxConfig) -> None:
        if config.proxy is not None:
            raise ConfigurationError(
                "the host backend cannot confine traffic to the credential proxy; use the "
                "bwrap or docker backend when SandboxConfig.proxy is set"
            )
        if shutil.which("bash") is None:
            raise SandboxUnavailable("bash is not installed on this machine; install bash")
        super().__init__(config)

    def _spawn(self) -> LocalShellChannel:
        assert self._workspace is not None
        env = {
            "PATH": os.environ.get("PATH", _FALLBACK_PATH),
            "HOME": str(self._workspace),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": "dumb",
            **self.config.env,
        }
        try:
            proc = subprocess.Popen(
                BASH_ARGV,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self._workspace,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start bash on the host: {exc}") from exc
        return LocalShellChannel(proc, session=True)
