"""Escape battery against the real bwrap backend: every case must stay blocked.

Each case is something a hostile command would try. A case passes only if the attempt ran
(the shell answered) and was blocked; if isolation broke, the case fails.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_harness_platform.sandbox import BwrapSandbox, SandboxConfig

pytestmark = pytest.mark.timeout(60)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST_HOME = Path(os.path.expanduser("~"))
FAKE_SECRET = "sk-test-" + secrets.token_hex(12)
CONFIG_MARKER = "config-marker-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BwrapSandbox]:
    # The secret is in this process's environment while the sandbox starts.
    os.environ["AHP_FAKE_SECRET"] = FAKE_SECRET
    try:
        with BwrapSandbox(SandboxConfig(env={"VISIBLE": CONFIG_MARKER})) as sb:
            yield sb
    finally:
        del os.environ["AHP_FAKE_SECRET"]


@dataclass(frozen=True)
class Attempt:
    """A command that must fail, and text that must never show up in its output."""

    name: str
    command: str
    forbidden: tuple[str, ...] = ()


ATTEMPTS = [
    Attempt("project dir", f"ls {PROJECT_ROOT}", ("pyproject.toml",)),
    Attempt("project file", f"cat {PROJECT_ROOT}/pyproject.toml", ("[project]",)),
    Attempt("root home", "ls -a /root", (".bashrc", ".profile")),
    Attempt("host home", f"ls -a {HOST_HOME}", (".bashrc",)),
    Attempt("users' homes", "ls /home"),
    Attempt("shadow", "cat /etc/shadow", ("root:",)),
    Attempt("gshadow", "cat /etc/gshadow"),
    Attempt("sudoers", "cat /etc/sudoers"),
    Attempt("ssh host keys", "ls /etc/ssh"),
    Attempt("package credentials", "cat /etc/pip.conf /etc/npmrc /etc/gitconfig"),
    Attempt("docker socket", "ls -l /var/run/docker.sock /run/docker.sock"),
    Attempt("sysfs", "ls /sys/class/net"),
    Attempt("mount tmpfs", "mount -t tmpfs none /mnt"),
    Attempt("remount root rw", "mount -o remount,rw /"),
    Attempt("bind mount", "mount --bind /workspace /tmp"),
    Attempt("new user namespace", "unshare -U true"),
    Attempt("new root-mapped namespace", "unshare -r true"),
    Attempt("new mount namespace", "unshare -m true"),
    Attempt("new net namespace", "unshare -n true"),
    Attempt("chroot", "chroot / true"),
    Attempt("write to /", "touch /escape"),
    Attempt("write to /usr", "touch /usr/escape"),
    Attempt("write to /etc", "touch /etc/escape"),
    Attempt("write to /dev", "touch /dev/escape"),
    Attempt("kernel logs", "dmesg"),
    Attempt(
        "raw socket",
        "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'",
    ),
    Attempt("set hostname", "hostname evil"),
    Attempt("reach 1.1.1.1", "timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'"),
    Attempt("reach DNS", "timeout 5 bash -c 'exec 3<>/dev/udp/8.8.8.8/53 && echo x >&3'"),
    Attempt("resolve a name", "timeout 5 getent hosts example.com"),
    Attempt(
        "abstract host sockets",
        "timeout 5 python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('\\0/tmp/.X11-unix/X0')\"",
    ),
]


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=lambda a: a.name)
def test_attempt_is_blocked(sandbox: BwrapSandbox, attempt: Attempt) -> None:
    started = time.monotonic()
    result = sandbox.run(attempt.command, timeout=10)
    assert not result.timed_out, "blocked attempts must fail fast"
    assert time.monotonic() - started < 5
    assert result.exit_code != 0, f"{attempt.name} succeeded: {result}"
    for text in attempt.forbidden:
        assert text not in result.stdout + result.stderr


@dataclass(frozen=True)
class Observation:
    """A command that runs inside; its stdout must be exactly ``expected``."""

    name: str
    command: str
    expected: str


OBSERVATIONS = [
    Observation("only lo", "ip -o link | cut -d: -f2 | tr -d ' '", "lo\n"),
    Observation("only lo in /proc", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", "lo\n"),
    Observation(
        "no capabilities",
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | cut -f2 | sort -u",
        "0000000000000000\n",
    ),
    Observation("no new privileges", "grep NoNewPrivs /proc/self/status | cut -f2", "1\n"),
    Observation("unprivileged uid", "test $(id -u) -ne 0 && echo non-root", "non-root\n"),
    Observation("hostname", "hostname", "sandbox\n"),
    Observation(
        "own pid namespace",
        "ps -e --no-headers -o comm | sort | tr '\\n' ' '",
        "bash bwrap ps sort tr ",
    ),
    Observation(
        "read-only root", "awk '$2 == \"/\" {print $4}' /proc/mounts | cut -d, -f1", "ro\n"
    ),
    Observation("private /tmp size", "df --output=size -BM /tmp | tail -1 | tr -d ' '", "64M\n"),
    Observation("workspace writable", "touch /workspace/ok && echo yes", "yes\n"),
]


@pytest.mark.parametrize("observation", OBSERVATIONS, ids=lambda o: o.name)
def test_observation(sandbox: BwrapSandbox, observation: Observation) -> None:
    result = sandbox.run(observation.command)
    assert result.exit_code == 0, result
    assert result.stdout == observation.expected


def test_host_environment_does_not_leak(sandbox: BwrapSandbox) -> None:
    assert FAKE_SECRET in os.environ["AHP_FAKE_SECRET"]
    result = sandbox.run(
        "env; set; for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f; done"
    )
    assert result.exit_code == 0
    assert "AHP_FAKE_SECRET" not in result.stdout
    assert FAKE_SECRET not in result.stdout
    # What the config allows is there, but not on a command line another process can read.
    assert f"VISIBLE={CONFIG_MARKER}" in result.stdout
    cmdlines = sandbox.run("tr '\\0' ' ' < /proc/1/cmdline").stdout
    assert CONFIG_MARKER not in cmdlines
    host_ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert CONFIG_MARKER not in host_ps


def test_host_processes_are_invisible(sandbox: BwrapSandbox) -> None:
    with subprocess.Popen(["sleep", "314159"]) as host_sleep:
        try:
            result = sandbox.run(
                f"ps -eo args; ls /proc; cat /proc/{host_sleep.pid}/cmdline; kill -0 {host_sleep.pid}"
            )
            assert "314159" not in result.stdout
            assert result.exit_code != 0  # neither readable nor signalable
            assert host_sleep.poll() is None
            visible = [x for x in result.stdout.split() if x.isdigit()]
            assert len(visible) < 10, visible
        finally:
            host_sleep.kill()


def test_host_loopback_is_unreachable(sandbox: BwrapSandbox) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        started = time.monotonic()
        result = sandbox.run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'")
        assert result.exit_code != 0
        assert time.monotonic() - started < 3
        with pytest.raises(TimeoutError):
            server.accept()


def test_writes_never_reach_the_host(sandbox: BwrapSandbox) -> None:
    token = secrets.token_hex(6)
    targets = [
        f"/tmp/ahp-escape-{token}",
        f"/var/tmp/ahp-escape-{token}",
        f"/dev/shm/ahp-escape-{token}",
        f"/run/ahp-escape-{token}",
        f"/etc/ahp-escape-{token}",
        f"{PROJECT_ROOT}/ahp-escape-{token}",
        f"/root/ahp-escape-{token}",
        f"/workspace/../ahp-escape-{token}",
    ]
    script = "; ".join(f"mkdir -p $(dirname {t}) 2>/dev/null; echo x > {t}" for t in targets)
    result = sandbox.run(script + "; ls /tmp /var/tmp /dev/shm")
    assert f"ahp-escape-{token}" in result.stdout  # the private /tmp did take the writes
    for target in targets:
        assert not Path(target).exists(), target
    assert not (PROJECT_ROOT / f"ahp-escape-{token}").exists()


def test_two_sandboxes_cannot_see_each_other() -> None:
    with BwrapSandbox(SandboxConfig()) as first, BwrapSandbox(SandboxConfig()) as second:
        first.run("echo mine > /workspace/first.txt; echo mine > /tmp/first-tmp.txt")
        assert first.workspace is not None and second.workspace is not None
        listing = second.run("ls -a /workspace /tmp; ps -eo args")
        assert "first" not in listing.stdout
        assert listing.stdout.count("bash --noprofile") == 2  # bwrap's argv and its own shell
        by_host_path = second.run(f"cat {first.workspace}/first.txt")
        assert by_host_path.exit_code != 0
        assert "mine" not in by_host_path.stdout
        assert (first.workspace / "first.txt").exists()
        assert not (second.workspace / "first.txt").exists()
