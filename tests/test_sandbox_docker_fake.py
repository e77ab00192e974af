"""The docker backend's shell plumbing, driven through a fake Docker SDK client.

There is no engine here, so the fake stands in at the SDK seam: ``containers.run`` records
the settings, ``exec_start(socket=True)`` runs a local bash and speaks Docker's multiplexed
stream framing over a socket pair, and ``exec_run`` runs the helper commands (``kill``) on
this host. Everything above the SDK (framing, timeouts, restart) is the real code.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent_harness_platform.sandbox import DockerSandbox, SandboxConfig

pytestmark = pytest.mark.timeout(60)


@dataclass
class FakeExec:
    proc: subprocess.Popen[bytes]
    ours: socket.socket
    pumps: list[threading.Thread] = field(default_factory=list)


class FakeAPI:
    def __init__(self, container: FakeContainer) -> None:
        self._container = container
        self._execs: dict[str, FakeExec] = {}
        self._cmds: dict[str, list[str]] = {}

    def exec_create(self, container_id: str, cmd: list[str], **kwargs: Any) -> dict[str, str]:
        assert container_id == self._container.id
        assert kwargs["stdin"] and not kwargs["tty"]
        exec_id = f"exec-{len(self._cmds)}"
        self._cmds[exec_id] = cmd
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, **kwargs: Any) -> Any:
        assert kwargs["socket"]
        theirs, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = subprocess.Popen(
            self._cmds[exec_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._container.workdir,
            start_new_session=True,
        )
        fake = FakeExec(proc, ours)
        lock = threading.Lock()

        def pump_out(stream: Any, kind: int) -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):
                with lock:
                    ours.sendall(struct.pack(">BxxxL", kind, len(chunk)) + chunk)

        def pump_in() -> None:
            while data := ours.recv(65536):
                proc.stdin.write(data)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]

        def finish() -> None:
            proc.wait()
            for pump in fake.pumps[:2]:
                pump.join(timeout=2)
            ours.shutdown(socket.SHUT_RDWR)

        fake.pumps = [
            threading.Thread(target=pump_out, args=(proc.stdout, 1), daemon=True),
            threading.Thread(target=pump_out, args=(proc.stderr, 2), daemon=True),
            threading.Thread(target=pump_in, daemon=True),
            threading.Thread(target=finish, daemon=True),
        ]
        for pump in fake.pumps:
            pump.start()
        self._execs[exec_id] = fake
        return theirs

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {"ExitCode": self._execs[exec_id].proc.wait()}

    def close_all(self) -> None:
        for fake in self._execs.values():
            fake.proc.kill()
            fake.proc.wait()
            for pump in fake.pumps:
                pump.join(timeout=2)
            for stream in (fake.proc.stdin, fake.proc.stdout, fake.proc.stderr):
                if stream is not None:
                    stream.close()
            fake.ours.close()


class FakeContainer:
    def __init__(self, client: FakeClient, kwargs: dict[str, Any]) -> None:
        self.id = "fake-container"
        self.client = client
        self.kwargs = kwargs
        self.workdir = next(iter(kwargs["volumes"]))  # the host workspace
        self.api = FakeAPI(self)
        self.removed = False
        self.helper_commands: list[list[str]] = []

    def exec_run(self, cmd: list[str], **_: Any) -> Any:
        self.helper_commands.append(cmd)
        return subprocess.run(cmd, capture_output=True, check=False)

    def remove(self, *, force: bool) -> None:
        assert force
        self.api.close_all()
        self.removed = True


class FakeClient:
    def __init__(self) -> None:
        self.containers = self
        self.container: FakeContainer | None = None

    @property
    def api(self) -> FakeAPI:
        assert self.container is not None
        return self.container.api

    def run(self, **kwargs: Any) -> FakeContainer:
        self.container = FakeContainer(self, kwargs)
        return self.container


@pytest.fixture
def fake_client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def sandbox(fake_client: FakeClient) -> Iterator[DockerSandbox]:
    with DockerSandbox(SandboxConfig(backend="docker"), client=fake_client) as sb:
        yield sb


def test_container_is_created_locked_down(sandbox: DockerSandbox, fake_client: FakeClient) -> None:
    assert fake_client.container is not None
    kwargs = fake_client.container.kwargs
    assert kwargs["network_mode"] == "none" and kwargs["read_only"] is True
    assert kwargs["name"] == f"ahp-sandbox-{sandbox.id}"


def test_commands_persist_over_the_multiplexed_stream(sandbox: DockerSandbox) -> None:
    sandbox.run("cd /tmp; V=kept")
    result = sandbox.run("pwd; echo $V; echo to-stderr >&2; (exit 7)")
    assert (result.stdout, result.stderr, result.exit_code) == ("/tmp\nkept\n", "to-stderr\n", 7)
    big = sandbox.run("head -c 300000 /dev/zero | tr '\\0' x | fold -w 1000")
    assert big.truncated and "more bytes" in big.stdout


def test_timeout_goes_through_exec_kill(sandbox: DockerSandbox, fake_client: FakeClient) -> None:
    sandbox.run("cd /tmp")
    result = sandbox.run("sleep 987123; echo after", timeout=1)
    assert result.timed_out and "after" not in result.stdout
    assert sandbox.run("pwd").stdout == "/tmp\n"
    assert fake_client.container is not None
    helpers = fake_client.container.helper_commands
    assert any(cmd[:2] == ["/bin/sh", "-c"] for cmd in helpers)
    assert any(cmd[:2] == ["kill", "-INT"] for cmd in helpers)


def test_shell_exit_restarts_in_a_new_exec(sandbox: DockerSandbox) -> None:
    assert sandbox.run("exit 4").exit_code == 4
    after = sandbox.run("echo again")
    assert after.restarted and after.stdout == "again\n"


def test_close_removes_the_container(fake_client: FakeClient) -> None:
    sandbox = DockerSandbox(SandboxConfig(backend="docker"), client=fake_client)
    sandbox.start()
    sandbox.close()
    sandbox.close()
    assert fake_client.container is not None and fake_client.container.removed
