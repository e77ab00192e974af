"""Resource limits and teardown of the real bwrap backend.

A bounded fork bomb and a memory hog are contained by the sandbox's cgroup while the host
stays responsive; bwrap runs as the unprivileged sandbox user; closing the sandbox leaves no
process, cgroup, mount or directory behind, even after the shell died or the parent crashed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agent_harness_platform.errors import SandboxUnavailable
from agent_harness_platform.sandbox import (
    SANDBOX_USER,
    BwrapSandbox,
    ExecResult,
    SandboxConfig,
    _proc,
)
from agent_harness_platform.sandbox._lifecycle import remove_tree

pytestmark = pytest.mark.timeout(60)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="cgroup v1 limits and the uid drop need root")

# Forks up to 400 children that each sleep 1.5 s and exit: it ends by itself even without a
# pids limit, so a broken limit fails the assertions instead of hanging the machine.
FORK_BOMB = textwrap.dedent(
    """\
    python3 - <<'EOF'
    import os, time
    ok = failed = 0
    for _ in range(400):
        try:
            pid = os.fork()
        except OSError:
            failed += 1
            continue
        if pid == 0:
            time.sleep(1.5)
            os._exit(0)
        ok += 1
    print(ok, failed)
    EOF"""
)


def host_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


@needs_root
def test_bwrap_runs_as_the_sandbox_user_not_root() -> None:
    expected = pwd.getpwnam(SANDBOX_USER).pw_uid
    with BwrapSandbox(SandboxConfig()) as sb:
        sb.run("sleep 60 &")
        cgroup = sb.cgroup
        assert cgroup is not None
        pids = cgroup.pids()
        assert len(pids) >= 3  # bwrap, its pid 1, the shell, the sleep
        assert {host_uid(pid) for pid in pids} == {expected}


@needs_root
def test_missing_sandbox_user_is_reported_with_the_fix() -> None:
    with pytest.raises(SandboxUnavailable, match=r"bash setup.sh"):
        BwrapSandbox(SandboxConfig(), sandbox_user="ahp-no-such-user")


@needs_root
def test_cgroup_limits_are_written() -> None:
    config = SandboxConfig(memory_mb=96, pids_max=50, cpu_quota=0.5)
    with BwrapSandbox(config) as sb:
        cgroup = sb.cgroup
        assert cgroup is not None
        values = {}
        for d in cgroup.dirs:
            for name in (
                "memory.limit_in_bytes",
                "memory.max",
                "pids.max",
                "cpu.cfs_quota_us",
                "cpu.max",
            ):
                if (d / name).exists():
                    values[name] = (d / name).read_text().strip()
        assert values.get("memory.limit_in_bytes", values.get("memory.max")) == str(
            96 * 1024 * 1024
        )
        assert values["pids.max"] == "50"
        assert values.get("cpu.cfs_quota_us", values.get("cpu.max", "").split(" ")[0]) == "50000"


@needs_root
@pytest.mark.timeout(30)
def test_fork_bomb_is_contained_and_host_stays_responsive() -> None:
    with BwrapSandbox(SandboxConfig(pids_max=64)) as sb:
        outcome: list[ExecResult] = []
        bomb = threading.Thread(target=lambda: outcome.append(sb.run(FORK_BOMB, timeout=20)))
        bomb.start()
        worst = 0.0
        while bomb.is_alive():
            started = time.monotonic()
            subprocess.run(["true"], check=True)
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)
        bomb.join()
        result = outcome[0]
        assert result.exit_code == 0, result
        ok, failed = map(int, result.stdout.split())
        assert failed > 0, "the pids limit did not stop the fork bomb"
        assert ok < 64
        assert worst < 1.0, f"a host command took {worst:.2f} s during the fork bomb"
        # The shell survives the bomb.
        time.sleep(1.6)
        assert sb.run("echo alive").stdout == "alive\n"


@needs_root
def test_memory_hog_is_killed_and_the_shell_survives() -> None:
    with BwrapSandbox(SandboxConfig(memory_mb=128)) as sb:
        # tail keeps everything it reads when there is no newline: 400 MB > 128 MB limit.
        result = sb.run("head -c 400M /dev/zero | tail > /dev/null; echo ${PIPESTATUS[1]}")
        assert result.stdout == "137\n", result
        after = sb.run("echo alive")
        assert after.stdout == "alive\n"
        assert not after.restarted


@needs_root
def test_oom_of_the_shell_itself_restarts_it() -> None:
    with BwrapSandbox(SandboxConfig(memory_mb=64)) as sb:
        sb.run("cd /tmp")
        # The shell grows a variable past the limit; the kernel kills it.
        result = sb.run("x=$(head -c 200M /dev/zero | tr '\\0' a); echo survived ${#x}", timeout=30)
        assert result.exit_code != 0
        after = sb.run("pwd")
        assert after.restarted
        assert after.stdout == "/workspace\n"


def sandbox_processes(sb: BwrapSandbox) -> set[int]:
    channel = sb._engine._channel  # the test needs the host pids to check they are gone
    assert channel is not None
    pids = {channel.pid, *_proc.descendants(channel.pid)}  # type: ignore[attr-defined]
    if sb.cgroup is not None:
        pids |= sb.cgroup.pids()
    return pids


def mounts_mentioning(text: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if text in line]


def assert_all_gone(pids: set[int]) -> None:
    still = _proc.wait_gone(pids, timeout=0.5)
    assert not still, f"processes left behind: {still}"


def test_teardown_leaves_nothing_behind() -> None:
    sb = BwrapSandbox(SandboxConfig())
    sb.start()
    sb.run("sleep 600 & (setsid sleep 601 &) ; nohup sleep 602 >/dev/null 2>&1 &")
    pids = sandbox_processes(sb)
    assert len(pids) >= 6
    cgroup_dirs = list(sb.cgroup.dirs) if sb.cgroup is not None else []
    assert sb.workspace is not None
    state_dir = sb.workspace.parent
    sb.close()
    assert_all_gone(pids)
    for d in cgroup_dirs:
        assert not d.exists(), d
    assert not state_dir.exists()
    assert not mounts_mentioning(sb.id)
    if IS_ROOT:
        uid = pwd.getpwnam(SANDBOX_USER).pw_uid
        leftovers = [p for p in pids if Path(f"/proc/{p}").exists() and host_uid(p) == uid]
        assert not leftovers


def test_teardown_after_the_shell_died() -> None:
    sb = BwrapSandbox(SandboxConfig())
    sb.start()
    pids = sandbox_processes(sb)
    sb.run("exit 5")
    sb.close()
    sb.close()
    assert_all_gone(pids)
    if sb.cgroup is not None:
        assert all(not d.exists() for d in sb.cgroup.dirs)


def test_a_crashed_parent_leaves_no_process_and_its_files_are_swept() -> None:
    script = textwrap.dedent(
        """\
        import os, sys
        from agent_harness_platform.sandbox import BwrapSandbox, SandboxConfig
        sb = BwrapSandbox(SandboxConfig())
        sb.run("sleep 600 &")
        channel = sb._engine._channel
        cgroups = [str(d) for d in sb.cgroup.dirs] if sb.cgroup else []
        print(channel.pid, sb.workspace.parent, *cgroups, flush=True)
        os._exit(1)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    bwrap_pid, state_dir, *cgroup_dirs = out.stdout.split()
    try:
        assert_all_gone({int(bwrap_pid)})
        # Nothing in any sandbox still runs the sleep the crashed parent started.
        ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
        assert not [ln for ln in ps.splitlines() if "sleep 600" in ln and not ln.startswith("Z")]
        # The parent could not delete its files; the next sandbox in the same place does.
        assert Path(state_dir).exists()
        with BwrapSandbox(SandboxConfig()) as sb:
            assert sb.workspace is not None
            assert sb.workspace.parent.parent == Path(state_dir).parent
        assert not Path(state_dir).exists()
        for d in cgroup_dirs:
            assert not Path(d).exists()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        for d in cgroup_dirs:
            with contextlib.suppress(FileNotFoundError):
                Path(d).rmdir()


@needs_root
def test_a_private_temporary_directory_does_not_lock_the_sandbox_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest's tmp_path is 0700 root: the sandbox user could not reach a workspace in it.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with BwrapSandbox(SandboxConfig()) as sb:
        assert sb.run("touch made && echo ok").stdout == "ok\n"
        assert sb.workspace is not None
        assert private not in sb.workspace.parents


def test_cleanup_never_changes_the_parent_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Regression: an error reported on the state directory itself must not make the cleanup
    # "fix" the permissions of its parent (that parent is /tmp in real use).
    parent = tmp_path / "parent"
    parent.mkdir()
    parent.chmod(0o1777)
    not_a_dir = parent / "file"
    not_a_dir.write_text("x")
    remove_tree(not_a_dir)  # rmtree reports an error on the path itself
    assert stat.S_IMODE(parent.stat().st_mode) == 0o1777
    state = parent / "state"
    (state / "locked").mkdir(parents=True)
    (state / "locked" / "f").write_text("x")
    (state / "locked").chmod(0)
    remove_tree(state)
    assert not state.exists()
    assert stat.S_IMODE(parent.stat().st_mode) == 0o1777
    assert "Could not remove" in caplog.text  # only the file, which is not a tree
