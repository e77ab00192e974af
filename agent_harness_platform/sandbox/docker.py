"""The Docker backend: the persistent shell in a locked-down container, through the Docker SDK.

What it defends against: the same as the bwrap backend (host files, processes, environment,
network, privileges, resource exhaustion), with the container runtime's namespaces, cgroups,
seccomp profile and AppArmor/SELinux where the engine has them. The container has no network
(``network_mode="none"``), a read-only root with a size-capped ``/tmp``, no capabilities,
``no-new-privileges``, a non-root user, and memory / pids / CPU limits. The credential proxy
arrives as in the bwrap backend: its Unix socket is bind-mounted at ``/run/ahp/proxy.sock``
and a ``socat`` forwarder (the container's main process) listens on ``127.0.0.1``.

What it does not defend against: a compromised or misconfigured engine (access to the Docker
socket is root on the host), kernel bugs, and what the proxy lets through.

The shell is a ``docker exec`` of bash with stdin attached; timeouts signal processes with
short ``docker exec``\\ s of ``kill``. One difference from bwrap: background jobs are not
spared by a timeout (finding them would cost an exec per command).

Build the image with ``docker build -t agent-harness-sandbox:latest -f docker/sandbox.Dockerfile .``
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import struct
import threading
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, SandboxError, SandboxUnavailable
from ._layout import (
    PROXY_CA,
    PROXY_SOCKET,
    WORKSPACE,
    forwarder_check,
    forwarder_command,
    sandbox_env,
)
from ._lifecycle import ShellSandbox
from ._shell import BASH_ARGV, STDERR, STDOUT
from .base import SandboxConfig

__all__ = [
    "CONTAINER_USER",
    "KILL_SCRIPT",
    "DockerExecChannel",
    "DockerSandbox",
    "build_command",
    "container_kwargs",
    "docker_engine_problem",
    "docker_problem",
]

CONTAINER_USER = (1000, 1000)
"""uid and gid of the ``sandbox`` user in ``docker/sandbox.Dockerfile``."""

KILL_SCRIPT = r"""
sig=$1; root=$2; shift 2
ps -e -o pid=,ppid=,pgid= | awk -v root="$root" -v keep=" $* " '
  { parent[$1] = $2; group[$1] = $3 }
  END {
    inside[root] = 1; grew = 1
    while (grew) {
      grew = 0
      for (p in parent) if (!(p in inside) && (parent[p] in inside)) { inside[p] = 1; grew = 1 }
    }
    for (p in inside) if (p != root && index(keep, " " group[p] " ") == 0) print p
  }' | xargs -r kill -s "$sig" 2>/dev/null
exit 0
"""
"""sh + ps + awk: signal every descendant of pid ``$2`` whose process group is not in ``$3...``."""


def build_command(image: str) -> str:
    """The command that builds the sandbox image, from the repository root."""
    return f"docker build -t {image} -f docker/sandbox.Dockerfile ."


def docker_engine_problem() -> str | None:
    """Why no Docker engine can be reached, or None when one answers a ping."""
    return _probe(None)


def docker_problem(image: str) -> str | None:
    """Why the docker backend cannot be used here (no engine, no image), or None."""
    return _probe(image)


def _probe(image: str | None) -> str | None:
    unreachable = "no Docker engine reachable ({}); start Docker or use AHP_SANDBOX=bwrap"
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        # Checked here because the SDK leaks its socket when the connection fails.
        return unreachable.format(f"{host.removeprefix('unix://')} does not exist")
    try:
        sdk = _sdk()
    except ImportError:
        return "the docker Python package is not installed; install agent-harness-platform"
    errors = sdk.errors
    problem: str | None = None
    client = None
    try:
        client = sdk.from_env(timeout=5)
        client.ping()
        if image is not None:
            client.images.get(image)
    except errors.ImageNotFound:
        problem = f"the sandbox image {image} is not built; run `{build_command(str(image))}`"
    except (errors.DockerException, OSError) as exc:
        problem = unreachable.format(_short(exc))
    finally:
        if client is not None:
            client.close()
    if problem is not None:
        _collect_leaked_sockets()
    return problem


def _collect_leaked_sockets() -> None:
    """The SDK leaves the socket of a failed connection to the garbage collector."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _sdk() -> Any:
    """The Docker SDK (``docker`` on PyPI), imported by name so that the repository's own
    ``docker/`` directory can never shadow it for type checkers."""
    sdk = importlib.import_module("docker")
    importlib.import_module("docker.errors")
    return sdk


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def container_kwargs(config: SandboxConfig, *, workspace: Path, name: str) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.run``; a pure function of its inputs."""
    volumes: dict[str, dict[str, str]] = {str(workspace): {"bind": WORKSPACE, "mode": "rw"}}
    command = ["sleep", "infinity"]
    if config.proxy is not None:
        volumes[str(config.proxy.socket_path)] = {"bind": PROXY_SOCKET, "mode": "rw"}
        if config.proxy.ca_cert is not None:
            volumes[str(config.proxy.ca_cert)] = {"bind": PROXY_CA, "mode": "ro"}
        forwarder = forwarder_command(config.proxy.inside_port)
        command = ["/bin/sh", "-c", f"{forwarder} & exec sleep infinity"]
    memory = f"{config.memory_mb}m"
    return {
        "image": config.image,
        "command": command,
        "name": name,
        "detach": True,
        "init": True,
        "hostname": "sandbox",
        "user": f"{CONTAINER_USER[0]}:{CONTAINER_USER[1]}",
        "working_dir": WORKSPACE,
        "environment": sandbox_env(config),
        "network_mode": "none",
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": config.pids_max,
        "nano_cpus": int(config.cpu_quota * 1_000_000_000),
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={config.tmp_size_mb}m,mode=1777"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "volumes": volumes,
        "labels": {"agent-harness-platform.sandbox": name},
    }


class DockerExecChannel:
    """One ``docker exec`` of bash: a multiplexed socket plus kills by ``docker exec``."""

    def __init__(self, container: Any, exec_id: str, sock: Any) -> None:
        self._container = container
        self._api = container.client.api
        self._exec_id = exec_id
        self._sock_wrapper = sock
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._sock.setblocking(False)
        self._buffer = b""
        self._eof = False
        self._exit_code: int | None = None
        self._shell_pid: int | None = None
        self._closed = False
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        if self._eof or self._closed:
            raise BrokenPipeError("the shell has exited")
        try:
            self._sock.setblocking(True)
            self._sock.sendall(data)
        except OSError as exc:
            raise BrokenPipeError("the shell has exited") from exc
        finally:
            with contextlib.suppress(OSError):
                self._sock.setblocking(False)

    def read(self, timeout: float) -> list[tuple[int, bytes]]:
        if self._eof or self._closed:
            return []
        ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        if not ready:
            return []
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:
            self._finish()
            return []
        self._buffer += data
        chunks: list[tuple[int, bytes]] = []
        # Docker's stream framing: 1 byte stream id, 3 zero bytes, 4-byte big-endian length.
        while len(self._buffer) >= 8:
            kind, size = struct.unpack(">BxxxL", self._buffer[:8])
            if len(self._buffer) < 8 + size:
                break
            payload = self._buffer[8 : 8 + size]
            self._buffer = self._buffer[8 + size :]
            if kind in (STDOUT, STDERR):
                chunks.append((kind, payload))
        return chunks

    def _finish(self) -> None:
        self._eof = True
        try:
            code = self._api.exec_inspect(self._exec_id).get("ExitCode")
        except Exception:  # the engine went away; the shell is gone either way
            code = None
        self._exit_code = 128 + int(signal.SIGKILL) if code is None else int(code)

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    def attach(self, shell_pid: int) -> None:
        self._shell_pid = shell_pid

    def jobs(self) -> frozenset[int]:
        return frozenset()

    def signal_command(self, sig: signal.Signals, keep: frozenset[int]) -> int:
        if self._shell_pid is None or self._eof:
            return 0
        self._exec_kill(sig.name.removeprefix("SIG"), self._shell_pid, keep)
        return 1

    def _exec_kill(self, sig: str, root: int, keep: frozenset[int]) -> None:
        argv = ["/bin/sh", "-c", KILL_SCRIPT, "ahp-kill", sig, str(root), *map(str, sorted(keep))]
        with contextlib.suppress(Exception):
            self._container.exec_run(argv, user=f"{CONTAINER_USER[0]}:{CONTAINER_USER[1]}")

    def interrupt_shell(self) -> None:
        if self._shell_pid is not None and not self._eof:
            with contextlib.suppress(Exception):
                self._container.exec_run(["kill", "-INT", str(self._shell_pid)])

    def terminate(self) -> None:
        if self._shell_pid is not None and not self._eof and not self._closed:
            self._exec_kill("KILL", self._shell_pid, frozenset())
            with contextlib.suppress(Exception):
                self._container.exec_run(["kill", "-KILL", str(self._shell_pid)])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.terminate()
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock_wrapper.close()
            with contextlib.suppress(OSError):
                self._sock.close()


class DockerSandbox(ShellSandbox):
    """A persistent shell in a Docker container. Needs a reachable engine and the image.

    ``client`` is a ``docker.DockerClient``; by default one from the environment.
    """

    backend = "docker"

    def __init__(self, config: SandboxConfig, *, client: Any = None) -> None:
        super().__init__(config)
        self._client = client
        self._own_client = client is None
        self._container: Any = None
        if config.proxy is not None:
            self._engine.ready_check = forwarder_check(config.proxy.inside_port)

    def _make_workspace(self, state_dir: Path) -> Path:
        workspace = super()._make_workspace(state_dir)
        if self.config.workspace is None and os.geteuid() == 0:
            os.chown(workspace, *CONTAINER_USER)
        return workspace

    def _prepare(self) -> None:
        assert self._workspace is not None
        if self.config.proxy is not None and not Path(self.config.proxy.socket_path).exists():
            raise ConfigurationError(
                f"proxy socket {self.config.proxy.socket_path} does not exist; "
                "start the proxy first"
            )
        problem = docker_problem(self.config.image) if self._client is None else None
        if problem is not None:
            raise SandboxUnavailable(problem)
        try:
            if self._client is None:
                self._client = _sdk().from_env(timeout=30)
            kwargs = container_kwargs(
                self.config, workspace=self._workspace, name=f"ahp-sandbox-{self.id}"
            )
            self._container = self._client.containers.run(**kwargs)
        except Exception as exc:  # DockerException, requests errors: translate at the seam
            raise SandboxError(
                f"could not start the sandbox container: {_short(exc)}",
                code="sandbox_start_failed",
            ) from exc

    def _spawn(self) -> DockerExecChannel:
        if self._container is None:
            raise SandboxError("the sandbox container is not running", code="sandbox_start_failed")
        try:
            api = self._container.client.api
            exec_id = api.exec_create(
                self._container.id,
                BASH_ARGV,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                workdir=WORKSPACE,
            )["Id"]
            sock = api.exec_start(exec_id, socket=True)
        except Exception as exc:
            raise SandboxError(
                f"could not start the shell in the container: {_short(exc)}",
                code="sandbox_start_failed",
            ) from exc
        return DockerExecChannel(self._container, exec_id, sock)

    def _release(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        if self._own_client and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
