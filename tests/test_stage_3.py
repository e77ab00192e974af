"""Stage 3 end to end: the agent follows the operator-editable SKILL.md, in a real sandbox.

The script runs once as a subprocess (what a user sees). Edit-and-re-run is in-process: a
stage-3 flow over a copy of ``skills/basic`` runs against this test process's Kitaru store,
and what ran is read back from the run's metadata (``sandbox_commands``), cross-checked with
the ``[sandbox] $`` log lines. Model calls are counted from the call log.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kitaru
import pytest

import stage_3_skills
from agent_harness_platform import AgentSession, LocalSkillSource, Profile, skill_tree_hash

from .conftest import PROJECT_ROOT
from .e2e_helpers import (
    executed,
    model_calls,
    os_pretty_name,
    run_script,
    section,
    stage_env,
    summary_paths,
)

SCRIPT = "stage_3_skills.py"
HEREDOC = "cat > summary.txt <<'EOF'"
SKILL_STEPS = ["cat /etc/os-release", "uname -r", "whoami", "cd /tmp"]
SKILL_FILE = "default-agent/SKILL.md"


@pytest.mark.timeout(600)
def test_stage_three_follows_the_skill_steps_in_order_offline(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    host_files = summary_paths(PROJECT_ROOT)

    done = run_script(SCRIPT, stage_env(fresh_store_env, log))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    lines = done.stdout.splitlines()
    read_line = f"[skills] read {SKILL_FILE}"
    reads = [i for i, line in enumerate(lines) if line.startswith(read_line)]
    first_command = next(i for i, line in enumerate(lines) if line.startswith("[sandbox] $ "))
    assert reads and reads[0] < first_command, "the skill is read before its first step runs"

    runs = executed(done.stdout)
    assert [r.command for r in runs[:-1]] == SKILL_STEPS
    assert runs[-1].command.startswith(HEREDOC)
    assert runs[-1].cwd == "/tmp"
    assert all(r.exit_code == 0 for r in runs), runs

    result = section(done.stdout, "Result")
    assert os.uname().release in result
    assert os_pretty_name() in result
    host_lines = [line for line in result.splitlines() if line.startswith("Host investigated:")]
    assert len(host_lines) == 1, result
    assert "sandbox" in host_lines[0]
    assert model_calls(log) > len(runs)  # at least list/read + one call per step + the answer
    assert host_files.changed() == []


# -- edit the SKILL.md and run again, in-process -------------------------------------------


@kitaru.flow
def skills_flow(profile: dict, model: str) -> str:
    with AgentSession(
        Profile.model_validate(profile), model=model, checkpoint_strategy="turn"
    ) as session:
        result = session.turn(stage_3_skills.TASK)
    return str(result.output)


@dataclass(frozen=True)
class Run:
    """One flow run: its result, the model calls it paid and what its metadata recorded."""

    output: str
    calls: int
    commands: list[str]
    """From the checkpoint metadata ``sandbox_commands``, in the order they ran."""
    logged: list[str]
    """From the ``[sandbox] $`` log lines (a heredoc shows its first line and ``…``)."""
    cwds: list[str]
    skills: dict[str, Any] | None
    """The checkpoint metadata ``ahp_skills``."""


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def sandbox_lines() -> Iterator[_Lines]:
    """The sandbox rail's log lines, captured on its own logger (no reliance on propagation)."""
    handler = _Lines()
    sandbox_logger = logging.getLogger("agent_harness_platform.sandbox")
    level = sandbox_logger.level
    sandbox_logger.addHandler(handler)
    sandbox_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        sandbox_logger.removeHandler(handler)
        sandbox_logger.setLevel(level)


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("AHP_MODEL_CALL_LOG", str(log))
    return log


def profile_over(skills: Path) -> dict[str, Any]:
    """Stage 3's profile, with the skills read from ``skills`` and the offline model."""
    data = stage_3_skills.DEFAULT_PROFILE.model_dump(mode="json")
    data.update(model="offline", skill_source=LocalSkillSource(skills).model_dump(mode="json"))
    return data


def run_flow(profile: dict[str, Any], call_log: Path, lines: _Lines) -> Run:
    paid_before = model_calls(call_log)
    lines.lines.clear()
    handle = skills_flow.run(profile=profile, model="offline")
    output = str(handle.wait())
    execution: Any = kitaru.KitaruClient().executions.get(handle.exec_id)
    checkpoints = {cp.name: cp for cp in execution.checkpoints}
    assert set(checkpoints) == {"default"}, sorted(checkpoints)
    metadata = checkpoints["default"].metadata
    recorded = metadata.get("sandbox_commands") or {}
    ordered = [recorded[key] for key in sorted(recorded)]
    return Run(
        output=output,
        calls=model_calls(call_log) - paid_before,
        commands=[entry["command"] for entry in ordered],
        logged=[line.removeprefix("[sandbox] $ ") for line in lines.lines if "] $ " in line],
        cwds=[entry["cwd"] for entry in ordered],
        skills=metadata.get("ahp_skills"),
    )


def add_date_step(skill_md: Path) -> None:
    """Operator edit: a new step 5 that runs `date`, before the summary; renumber the rest."""
    text = skill_md.read_text()
    edited = text.replace("6. Return the content", "7. Return the content").replace(
        "5. Write a 2-sentence",
        "5. Print the date:\n   ```bash\n   date\n   ```\n6. Write a 2-sentence",
    )
    assert edited.count("   date\n") == 1 and "7. Return the content" in edited, "edit failed"
    skill_md.write_text(edited)


@pytest.mark.timeout(600)
def test_editing_the_skill_changes_the_commands_and_an_unchanged_rerun_is_cached(
    tmp_path: Path, call_log: Path, sandbox_lines: _Lines
) -> None:
    skills = tmp_path / "skills"
    shutil.copytree(PROJECT_ROOT / "skills" / "basic", skills)
    profile = profile_over(skills)
    hash_before = skill_tree_hash(skills)

    first = run_flow(profile, call_log, sandbox_lines)
    assert first.commands[:-1] == SKILL_STEPS
    assert first.commands[-1].startswith(HEREDOC) and first.cwds[-1] == "/tmp"
    assert [c.partition("\n")[0] for c in first.commands] == [
        c.removesuffix(" …") for c in first.logged
    ], "the metadata and the log lines must agree on what ran"
    assert "date" not in first.commands
    assert first.calls > 0
    assert first.skills == {"tree_hash": hash_before, "files_read": [SKILL_FILE]}

    add_date_step(skills / SKILL_FILE)
    hash_after = skill_tree_hash(skills)
    assert hash_after != hash_before

    edited = run_flow(profile, call_log, sandbox_lines)  # same profile; cache not disabled
    assert edited.commands[:-1] == [*SKILL_STEPS, "date"]
    assert edited.logged[:-1] == [*SKILL_STEPS, "date"]
    assert edited.commands[-1].startswith(HEREDOC) and edited.cwds[-1] == "/tmp"
    assert edited.calls == first.calls + 1  # one more step, one more model call
    assert edited.skills == {"tree_hash": hash_after, "files_read": [SKILL_FILE]}

    again = run_flow(profile, call_log, sandbox_lines)
    assert again.calls == 0, "an unchanged skill tree must be served from the cache"
    # A cached turn runs none of its commands again; the session only replays the working
    # directory the turn left, so a next turn would start where it expects.
    assert again.logged == ["cd -- /tmp"], "a cached turn runs no command of its own"
    assert again.output == edited.output
    # A cached checkpoint keeps the metadata recorded when it ran: the run still says which
    # skill tree (hash) and files its answer came from, though nothing was read this time.
    assert again.skills == edited.skills
