"""Starting, dying and stopping: the proxy fails fast and loud, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from agent_harness_platform.errors import ProxyError
from agent_harness_platform.proxy import CredentialProxy, ProxyRule

SECRET = "lifecycle-secret-4e6a8c0b2d"
RULES = [
    ProxyRule(
        name="wiki",
        hosts=["wiki.local"],
        headers={"Authorization": "Bearer {{ wiki-token.value }}"},
    )
]
STORE = {"wiki-token": {"value": SECRET}}


def new_proxy(tmp_path: Path, **kwargs: object) -> CredentialProxy:
    return CredentialProxy(
        RULES,
        secret_lookup=STORE.__getitem__,
        state_dir=tmp_path / "state",
        **kwargs,  # type: ignore[arg-type]
    )


def fake_mitmdump(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-mitmdump"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def test_killed_proxy_fails_fast_and_stop_cleans_up(tmp_path: Path) -> None:
    proxy = new_proxy(tmp_path).start()
    try:
        runtime, port, sock = proxy.runtime_dir, proxy.port, proxy.socket_path
        url = proxy.url_with_token
        assert proxy.is_alive()
        assert proxy.pid is not None
        os.killpg(proxy.pid, signal.SIGKILL)

        started = time.monotonic()
        with (
            httpx.Client(proxy=url, trust_env=False, timeout=10) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get("http://wiki.local/snippets/durability")
        assert time.monotonic() - started < 2.0

        started = time.monotonic()
        with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(str(sock))
            raw.sendall(b"GET http://wiki.local/ HTTP/1.1\r\nHost: wiki.local\r\n\r\n")
            if not raw.recv(1024):
                raise ConnectionResetError("closed without an answer")
        assert time.monotonic() - started < 2.0

        deadline = time.monotonic() + 5
        while proxy.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proxy.is_alive()
    finally:
        proxy.stop()
    assert not runtime.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    proxy.stop()  # idempotent


def test_stop_removes_config_socket_and_ca_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AHP_TEST_API_KEY", "host-credential")
    with new_proxy(tmp_path) as proxy:
        assert proxy.pid is not None
        # The proxy's environment holds neither rule secrets nor the host's credentials.
        environ = Path(f"/proc/{proxy.pid}/environ").read_bytes()
        assert b"host-credential" not in environ and SECRET.encode() not in environ
        first_url = proxy.url_with_token
        runtime = proxy.runtime_dir
        private = proxy.config_path.parent
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert proxy.socket_path.exists() and proxy.ca_cert.exists()
    assert not runtime.exists()
    assert not proxy.is_alive()
    with pytest.raises(ProxyError):
        _ = proxy.port
    with proxy:  # restartable, with a fresh token
        assert proxy.url_with_token.split("@")[0] != first_url.split("@")[0]


def test_missing_binary_says_to_run_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AHP_MITMDUMP", str(tmp_path / "no-such-mitmdump"))
    with pytest.raises(ProxyError) as info:
        new_proxy(tmp_path).start()
    assert info.value.code == "proxy_unavailable"
    assert "bash setup.sh" in str(info.value)


def test_start_failure_shows_output_tail_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the runtime dir goes
    # A broken "mitmdump" that prints the config it was given (secrets included), then dies.
    body = (
        'for arg in "$@"; do\n'
        '  case "$arg" in ahp_config=*) cat "${arg#ahp_config=}" >&2;; esac\n'
        "done\n"
        'echo "fatal: something went wrong" >&2\nexit 3'
    )
    monkeypatch.setenv("AHP_MITMDUMP", str(fake_mitmdump(tmp_path, body)))
    proxy = new_proxy(tmp_path)
    with pytest.raises(ProxyError) as info:
        proxy.start()
    message = str(info.value)
    assert info.value.code == "proxy_start_failed"
    assert "exit code 3" in message and "fatal: something went wrong" in message
    assert "bash setup.sh" in message
    assert SECRET not in message
    assert "***" in message  # the value was there, redacted
    assert not proxy.is_alive()
    assert list(scratch.iterdir()) == []  # config, CA copy and socket dir are gone


def test_start_timeout_kills_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    monkeypatch.setenv(
        "AHP_MITMDUMP", str(fake_mitmdump(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60"))
    )
    proxy = new_proxy(tmp_path, start_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ProxyError, match="did not start within 1 s"):
        proxy.start()
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        return stream.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.timeout(120)
def test_proxy_dies_with_an_owner_killed_by_sigkill(tmp_path: Path) -> None:
    """A run killed with -9 gets no chance to stop its proxy: the proxy (which holds the
    secrets) and its socket forwarder must still go away by themselves."""
    import subprocess
    import sys

    owner_code = f"""
import os, sys, time
from pathlib import Path
from agent_harness_platform.proxy import CredentialProxy, ProxyRule
rules = [ProxyRule(name="wiki-auth", hosts=["wiki.local"],
                   headers={{"Authorization": "Bearer {{{{ wiki-token.value }}}}"}})]
proxy = CredentialProxy(rules, secret_lookup=lambda name: {{"value": "{SECRET}"}},
                        state_dir=Path({str(tmp_path / "state")!r}))
proxy.start()
print(proxy.port, flush=True)
time.sleep(600)
"""
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code],
        stdout=subprocess.PIPE,
        text=True,
        stderr=subprocess.DEVNULL,
    )
    assert owner.stdout is not None
    port = int(owner.stdout.readline())
    children = [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and _parent_of(int(pid)) == owner.pid
    ]
    assert children, "the proxy's processes were not found"
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass

    owner.kill()
    owner.wait(timeout=10)
    owner.stdout.close()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children)
    # mitmdump itself (a grandchild, under uvx) notices its owner is gone and exits.
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return int(stream.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None
