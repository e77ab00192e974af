"""Stage 2 end to end: the agent's commands run in a real bubblewrap sandbox, never on the host.

The script runs as a subprocess against its own Kitaru store; what ran, and where, is read
from its ``[sandbox]`` lines and model calls are counted from the call log. The in-process
test drives the same two turns through ``build_agent`` over a live sandbox, so it can look
inside before the sandbox is gone.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import stage_2_sandbox
from agent_harness_platform import Rails, build_agent, resolve_model, sandbox_config_for
from agent_harness_platform.sandbox import BwrapSandbox, open_sandbox

from .conftest import PROJECT_ROOT
from .e2e_helpers import (
    executed,
    host_user,
    model_calls,
    os_pretty_name,
    run_script,
    sandbox_state_dirs,
    section,
    stage_env,
    summary_paths,
)

SCRIPT = "stage_2_sandbox.py"
TURN_1_COMMANDS = ["cat /etc/os-release", "uname -r", "whoami", "cd /tmp"]
TURN_1_CALLS = 5  # one call per command, then the report
TURN_2_CALLS = 2  # the heredoc that writes and cats summary.txt, then the answer
HEREDOC = "cat > summary.txt <<'EOF'"


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """An empty directory to run the script from: anything it leaves there came from the run."""
    directory = tmp_path / "cwd"
    directory.mkdir()
    return directory


@pytest.mark.timeout(600)
def test_summary_is_written_in_the_sandbox_tmp_and_never_on_the_host(
    fresh_store_env: dict[str, str], tmp_path: Path, work_dir: Path
) -> None:
    log = tmp_path / "calls.log"
    host_files = summary_paths(PROJECT_ROOT, work_dir)

    done = run_script(SCRIPT, stage_env(fresh_store_env, log), cwd=work_dir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    runs = executed(done.stdout)
    assert [r.command for r in runs[:-1]] == TURN_1_COMMANDS
    assert all(r.exit_code == 0 for r in runs), runs
    assert runs[3].cwd == "/tmp"  # turn 1 ends with the shell in /tmp ...
    write = runs[-1]
    assert write.command.startswith(HEREDOC)
    assert write.cwd == "/tmp"  # ... and turn 2's heredoc runs there: the same shell
    assert write.stdout_chars > 0  # it cat'ed what it wrote

    summary = section(done.stdout, "Summary")
    assert os.uname().release in summary
    assert os_pretty_name() in summary
    investigation = section(done.stdout, "Investigation")
    assert "Current user: sandbox" in investigation
    assert host_user() != "sandbox"
    assert f"Current user: {host_user()}" not in output
    assert model_calls(log) == TURN_1_CALLS + TURN_2_CALLS
    assert f"[model] {TURN_1_CALLS + TURN_2_CALLS} model call(s) this run" in done.stdout

    assert host_files.changed() == []
    assert list(work_dir.iterdir()) == []
    started = sandbox_state_dirs(done.stdout)
    assert len(started) == 1
    assert not started[0].exists(), "the sandbox's host-side directory must be removed"


@pytest.mark.timeout(600)
def test_crash_then_rerun_pays_only_turn_two_and_disable_cache_pays_both(
    fresh_store_env: dict[str, str], tmp_path: Path, work_dir: Path
) -> None:
    log = tmp_path / "calls.log"
    env = stage_env(fresh_store_env, log)
    host_files = summary_paths(PROJECT_ROOT, work_dir)

    crashed = run_script(SCRIPT, env, cwd=work_dir, FORCE_FAILURE="1")
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert "Flow failed after" in crashed.stdout
    assert "FORCE_FAILURE=1" in crashed.stdout
    assert [r.command for r in executed(crashed.stdout)] == TURN_1_COMMANDS  # no summary yet
    turn_1 = model_calls(log)
    assert turn_1 == TURN_1_CALLS

    rerun = run_script(SCRIPT, env, cwd=work_dir)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    assert "Checkpoint `default` cached" in output
    assert model_calls(log) - turn_1 == TURN_2_CALLS, "turn 1 must not be paid for again"
    assert f"[model] {TURN_2_CALLS} model call(s) this run" in rerun.stdout
    runs = executed(rerun.stdout)
    # Turn 1 comes from the cache, so its commands do not run again; the session replays the
    # working directory it left (`cd -- /tmp`), then turn 2 writes the summary there.
    assert "restoring the working directory /tmp left by the cached turn" in rerun.stdout
    assert runs[0].command == "cd -- /tmp"
    assert len(runs) == 2, f"only the cwd restore and turn 2's command run, got {runs}"
    write = runs[1]
    assert write.command.startswith(HEREDOC)
    assert write.exit_code == 0 and write.stdout_chars > 0
    assert write.cwd == "/tmp"
    assert os.uname().release in section(rerun.stdout, "Summary")
    started = sandbox_state_dirs(rerun.stdout)
    assert len(started) == 1 and not started[0].exists()

    uncached = run_script(SCRIPT, env, cwd=work_dir, DISABLE_CACHE="1")
    output = uncached.stdout + uncached.stderr
    assert uncached.returncode == 0, output
    assert "DISABLE_CACHE=1" in uncached.stdout
    assert "Checkpoint `default` cached" not in output
    assert "Checkpoint `default_2` cached" not in output
    # Crash (turn 1) + re-run (turn 2) + uncached run (both turns again).
    assert model_calls(log) == 2 * (TURN_1_CALLS + TURN_2_CALLS)
    runs = executed(uncached.stdout)
    assert [r.command for r in runs[:-1]] == TURN_1_COMMANDS
    assert runs[-1].command.startswith(HEREDOC) and runs[-1].cwd == "/tmp"

    assert host_files.changed() == []
    assert list(work_dir.iterdir()) == []


@pytest.mark.timeout(300)
def test_inside_the_live_sandbox_the_summary_is_in_tmp_under_the_sandbox_identity() -> None:
    # AgentSession keeps its sandbox private, so the two turns are driven directly: the same
    # profile's sandbox policy, the same tools (build_agent) and the offline model.
    profile = stage_2_sandbox.DEFAULT_PROFILE
    config = dataclasses.replace(sandbox_config_for(profile), backend="bwrap")
    host_files = summary_paths(PROJECT_ROOT, Path.cwd())

    with open_sandbox(config) as sandbox:
        assert isinstance(sandbox, BwrapSandbox)
        agent = build_agent(profile, model=resolve_model("offline"), rails=Rails(sandbox=sandbox))
        first = agent.run_sync(stage_2_sandbox.TURN_1)
        second = agent.run_sync(stage_2_sandbox.TURN_2, message_history=first.all_messages())
        inside = sandbox.run("cat /tmp/summary.txt; hostname; id -un")
        workspace = sandbox.workspace
        assert workspace is not None
        in_workspace = sorted(p.name for p in workspace.iterdir())

    assert inside.exit_code == 0, inside.stderr
    *written, hostname, user = inside.stdout.splitlines()
    assert written, "summary.txt is missing from the sandbox's /tmp"
    text = "\n".join(written)
    assert os.uname().release in text
    assert text in str(second.output)
    assert hostname == "sandbox"
    assert user == "sandbox" != host_user()
    assert in_workspace == []  # /tmp is the sandbox's own tmpfs, not the host-backed workspace
    assert host_files.changed() == []
    assert not workspace.exists()
