"""`ahp recover`: a run killed with -9 inside a checkpoint is not stuck `running` for good,
and the re-run reuses what finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT
from .e2e_helpers import ahp, execution_record


def status(env: dict[str, str], execution: str) -> str:
    return str(execution_record(env, execution)["status"])


@pytest.mark.timeout(600)
def test_recover_then_rerun_reuses_the_finished_checkpoint(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    trace = tmp_path / "trace.log"
    env = {**fresh_store_env, "AHP_TEST_TRACE": str(trace)}
    run = subprocess.Popen(
        [sys.executable, "-m", "tests.kill_flow"],
        cwd=PROJECT_ROOT,
        env={**env, "AHP_TEST_HANG": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while "second" not in (trace.read_text() if trace.exists() else ""):
        assert time.monotonic() < deadline, "the flow never reached its second checkpoint"
        assert run.poll() is None, "the flow exited before it could be killed"
        time.sleep(0.5)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)

    listing = ahp(env, "runs", "--flow", "recoverable").stdout
    execution = listing.split()[0]
    assert status(env, execution) == "running"  # stuck: nothing will ever finish it

    recovered = ahp(env, "recover", execution)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "marked failed" in recovered.stdout
    assert status(env, execution) == "failed"

    # A re-run is a new execution: the finished first checkpoint comes from the cache.
    rerun = subprocess.run(
        [sys.executable, "-m", "tests.kill_flow"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "first done, second done" in rerun.stdout
    assert "Checkpoint `first_step` cached" in rerun.stdout + rerun.stderr
    assert trace.read_text().splitlines() == ["first", "second", "second"]


def test_recover_refuses_a_run_that_is_not_running(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fresh_store_env, "AHP_TEST_TRACE": str(tmp_path / "trace.log")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.kill_flow"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "second done" in done.stdout
    execution = ahp(env, "runs", "--flow", "recoverable").stdout.split()[0]
    refused = ahp(env, "recover", execution)
    assert refused.returncode == 0
    assert "is completed, not running; nothing to recover" in refused.stdout
