"""Backend selection, the docker backend's configuration, and bwrap's options.

Docker cannot run here (no engine), so its container settings and its timeout helper are
tested without one, and its integration tests skip with the reason.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent_harness_platform.errors import ConfigurationError, SandboxUnavailable
from agent_harness_platform.sandbox import (
    BACKEND_ENV_VAR,
    PROXY_CA,
    PROXY_SOCKET,
    BwrapSandbox,
    DockerSandbox,
    HostSandbox,
    ProxyEndpoint,
    Sandbox,
    SandboxConfig,
    open_sandbox,
    select_backend,
)
from agent_harness_platform.sandbox.bwrap import bwrap_options
from agent_harness_platform.sandbox.docker import (
    KILL_SCRIPT,
    build_command,
    container_kwargs,
    docker_engine_problem,
    docker_problem,
)

pytestmark = pytest.mark.timeout(60)


HAVE_DOCKER = docker_engine_problem() is None  # docker.from_env().ping() answered
needs_docker = pytest.mark.skipif(not HAVE_DOCKER, reason="no Docker engine reachable")
without_docker = pytest.mark.skipif(HAVE_DOCKER, reason="a Docker engine is reachable here")


@pytest.fixture(autouse=True)
def no_backend_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV_VAR, raising=False)


@dataclass(frozen=True)
class Pick:
    env: str | None
    configured: str
    expected: str


PICKS = [
    Pick(None, "bwrap", "bwrap"),
    Pick(None, "host", "host"),
    Pick(None, "docker", "docker"),
    Pick("bwrap", "docker", "bwrap"),
    Pick("host", "bwrap", "host"),
    Pick(" Docker ", "bwrap", "docker"),
    Pick("", "bwrap", "bwrap"),
]


@pytest.mark.parametrize("pick", PICKS, ids=lambda p: f"{p.env}-{p.configured}")
def test_env_var_overrides_config(monkeypatch: pytest.MonkeyPatch, pick: Pick) -> None:
    if pick.env is not None:
        monkeypatch.setenv(BACKEND_ENV_VAR, pick.env)
    assert select_backend(SandboxConfig(backend=pick.configured)) == pick.expected


@without_docker
@pytest.mark.parametrize("source", ["config", "env"])
def test_auto_is_bwrap_without_an_engine(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    if source == "env":
        monkeypatch.setenv(BACKEND_ENV_VAR, "auto")
    assert select_backend(SandboxConfig(backend="auto")) == "bwrap"
    assert isinstance(open_sandbox(SandboxConfig(backend="auto")), BwrapSandbox)


@pytest.mark.parametrize("value", ["podman", "none", "hostt"])
def test_unknown_backend_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown sandbox backend"):
        select_backend(SandboxConfig(backend=value))
    monkeypatch.setenv(BACKEND_ENV_VAR, value)
    with pytest.raises(ConfigurationError, match=f"{BACKEND_ENV_VAR}={value}"):
        select_backend(SandboxConfig())


def test_host_needs_explicit_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="allow_host=True"):
        open_sandbox(SandboxConfig(backend="host"))
    monkeypatch.setenv(BACKEND_ENV_VAR, "host")
    with pytest.raises(ConfigurationError, match="no isolation"):
        open_sandbox(SandboxConfig(backend="bwrap"))
    sandbox = open_sandbox(SandboxConfig(), allow_host=True)
    assert isinstance(sandbox, HostSandbox)


def test_open_sandbox_returns_an_unstarted_sandbox() -> None:
    sandbox = open_sandbox(SandboxConfig(backend="bwrap"))
    assert isinstance(sandbox, BwrapSandbox)
    assert isinstance(sandbox, Sandbox)
    assert sandbox.workspace is None
    with sandbox:
        assert sandbox.run("echo up").stdout == "up\n"


@without_docker
def test_explicit_docker_without_an_engine_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SandboxUnavailable, match="no Docker engine reachable"):
        open_sandbox(SandboxConfig(backend="docker"))
    monkeypatch.setenv(BACKEND_ENV_VAR, "docker")
    with pytest.raises(SandboxUnavailable, match="AHP_SANDBOX=bwrap") as caught:
        open_sandbox(SandboxConfig(backend="bwrap"))
    assert build_command("agent-harness-sandbox:latest") in str(caught.value)
    problem = docker_problem("agent-harness-sandbox:latest")
    assert problem is not None and "no Docker engine reachable" in problem


@without_docker
def test_docker_sandbox_start_fails_cleanly_without_an_engine() -> None:
    sandbox = DockerSandbox(SandboxConfig(backend="docker"))
    with pytest.raises(SandboxUnavailable, match="no Docker engine reachable"):
        sandbox.start()
    sandbox.close()


def test_build_command_names_the_dockerfile() -> None:
    assert build_command("agent-harness-sandbox:latest") == (
        "docker build -t agent-harness-sandbox:latest -f docker/sandbox.Dockerfile ."
    )
    dockerfile = Path(__file__).resolve().parent.parent / "docker" / "sandbox.Dockerfile"
    text = dockerfile.read_text()
    for package in ("bash", "coreutils", "procps", "curl", "socat", "ca-certificates", "iproute2"):
        assert package in text
    assert "USER sandbox" in text


def test_container_kwargs_lock_the_container_down(tmp_path: Path) -> None:
    config = SandboxConfig(
        memory_mb=256, pids_max=100, cpu_quota=0.5, tmp_size_mb=32, env={"A": "1"}
    )
    kwargs = container_kwargs(config, workspace=tmp_path, name="ahp-sandbox-x")
    assert kwargs["network_mode"] == "none"
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["read_only"] is True
    assert kwargs["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=32m,mode=1777"}
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == "256m"
    assert kwargs["pids_limit"] == 100
    assert kwargs["nano_cpus"] == 500_000_000
    assert not kwargs["user"].startswith("0") and kwargs["user"] != "root"
    assert kwargs["volumes"] == {str(tmp_path): {"bind": "/workspace", "mode": "rw"}}
    assert kwargs["environment"]["HOME"] == "/workspace"
    assert kwargs["environment"]["A"] == "1"
    assert "privileged" not in kwargs and "network" not in kwargs


def test_container_kwargs_wire_the_proxy(tmp_path: Path) -> None:
    proxy = ProxyEndpoint(
        socket_path=tmp_path / "p.sock", ca_cert=tmp_path / "ca.pem", env={"HTTPS_PROXY": "x"}
    )
    kwargs = container_kwargs(SandboxConfig(proxy=proxy), workspace=tmp_path, name="n")
    assert kwargs["network_mode"] == "none"
    assert kwargs["volumes"][str(tmp_path / "p.sock")]["bind"] == PROXY_SOCKET
    assert kwargs["volumes"][str(tmp_path / "ca.pem")] == {"bind": PROXY_CA, "mode": "ro"}
    assert "socat TCP-LISTEN:3128,bind=127.0.0.1" in kwargs["command"][-1]
    env = kwargs["environment"]
    assert env["HTTPS_PROXY"] == "x"
    assert env["SSL_CERT_FILE"] == env["CURL_CA_BUNDLE"] == env["REQUESTS_CA_BUNDLE"] == PROXY_CA


def test_bwrap_options_isolate_everything(tmp_path: Path) -> None:
    options = bwrap_options(
        SandboxConfig(tmp_size_mb=16), workspace=tmp_path / "ws", etc_dir=tmp_path / "etc"
    )
    joined = " ".join(options)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"):
        assert flag in options
    assert "--new-session" in options and "--clearenv" in options
    assert "--cap-drop ALL" in joined
    assert "--share-net" not in options
    assert "--hostname sandbox" in joined
    assert f"--bind {tmp_path / 'ws'} /workspace" in joined
    assert f"--size {16 * 1024 * 1024} --tmpfs /tmp" in joined
    assert "--remount-ro /" in joined
    assert "/etc/shadow" not in joined and "/etc/sudoers" not in joined
    assert "--bind /etc" not in joined and "--ro-bind /etc /etc" not in joined
    assert "/root" not in joined and "/home" not in joined


# -- the docker backend's timeout helper, run here against real host processes --------------


@pytest.fixture
def job_tree() -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    # A shell with job control: two background jobs, each in its own process group.
    proc = subprocess.Popen(
        ["bash", "-c", "set -m; sleep 271 & sleep 272 & echo $(jobs -p); wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    groups = [int(x) for x in proc.stdout.readline().split()]
    try:
        yield proc, groups
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        subprocess.run(["kill", "-9", *map(str, groups)], check=False, capture_output=True)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_kill_script_spares_kept_groups(
    job_tree: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, (first, second) = job_tree
    subprocess.run(
        ["sh", "-c", KILL_SCRIPT, "ahp-kill", "KILL", str(proc.pid), str(first)], check=True
    )
    deadline = time.monotonic() + 2
    while alive(second) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(second)
    assert alive(first)
    assert proc.poll() is None  # the shell itself is never a target


# -- integration: only where an engine exists --------------------------------------------------


@pytest.fixture
def docker_sandbox() -> Iterator[DockerSandbox]:
    problem = docker_problem(SandboxConfig().image)
    if problem is not None:
        pytest.skip(problem)
    with DockerSandbox(SandboxConfig(backend="docker")) as sb:
        yield sb


@needs_docker
def test_docker_shell_persists(docker_sandbox: DockerSandbox) -> None:
    docker_sandbox.run("cd /tmp; X=1")
    result = docker_sandbox.run("pwd; echo $X; echo err >&2")
    assert (result.stdout, result.stderr) == ("/tmp\n1\n", "err\n")


@needs_docker
def test_docker_timeout_keeps_the_shell(docker_sandbox: DockerSandbox) -> None:
    docker_sandbox.run("cd /tmp")
    result = docker_sandbox.run("sleep 1000", timeout=1)
    assert result.timed_out
    assert docker_sandbox.run("pwd").stdout == "/tmp\n"


@needs_docker
def test_docker_has_no_network(docker_sandbox: DockerSandbox) -> None:
    assert docker_sandbox.run("ip -o link | wc -l").stdout == "1\n"
    assert docker_sandbox.run("timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'").exit_code != 0
