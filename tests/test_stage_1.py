"""Stage 1 through the real script, as subprocesses against a real (isolated) Kitaru store.

Model calls are counted from the call log every request appends to, so "served from the
cache" means "the model was not paid", not just "a log line said cached".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .e2e_helpers import model_calls, run_script

SCRIPT = "stage_1_basic_agent.py"
TURN_1_CALLS = 5  # four commands, one per question, then the report
TURN_2_CALLS = 1  # the summary, from turn 1's findings, no new commands


def run_stage(env: dict[str, str], **flags: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, env, **flags)


@pytest.mark.timeout(600)
def test_crash_then_rerun_serves_turn_one_from_the_cache(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "model-calls.log"
    env = {**fresh_store_env, "AHP_MODEL_CALL_LOG": str(log)}
    env.pop("FORCE_FAILURE", None)
    env.pop("DISABLE_CACHE", None)

    crashed = run_stage(env, FORCE_FAILURE="1")
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert "Flow failed after" in crashed.stdout
    assert "Re-run without FORCE_FAILURE" in crashed.stdout
    assert "offline scripted model" in crashed.stdout  # announced, with how to switch
    assert model_calls(log) == TURN_1_CALLS

    rerun = run_stage(env)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    assert model_calls(log) == TURN_1_CALLS + TURN_2_CALLS  # zero calls re-paid for turn 1
    assert "Checkpoint `default` cached" in output
    assert "# Investigation" in rerun.stdout and "# Summary" in rerun.stdout
    assert "[took " in rerun.stdout
    assert f"[model] {TURN_2_CALLS} model call(s) this run" in rerun.stdout

    uncached = run_stage(env, DISABLE_CACHE="1")
    assert uncached.returncode == 0, uncached.stdout + uncached.stderr
    assert model_calls(log) == 2 * TURN_1_CALLS + 2 * TURN_2_CALLS  # both turns re-executed
    assert "Checkpoint `default` cached" not in uncached.stdout + uncached.stderr


def test_host_facts_come_from_real_commands(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**fresh_store_env, "AHP_MODEL_CALL_LOG": str(tmp_path / "calls.log")}
    done = run_stage(env)
    assert done.returncode == 0, done.stdout + done.stderr
    kernel = os.uname().release
    assert kernel in done.stdout
    assert "[sandbox] $ uname -r" in done.stdout
