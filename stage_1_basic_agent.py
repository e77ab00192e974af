"""Stage 1: a durable agent. A crash between turns never re-pays finished work.

    uv run python stage_1_basic_agent.py                    # two turns, both checkpointed
    FORCE_FAILURE=1 uv run python stage_1_basic_agent.py    # crash after turn 1
    uv run python stage_1_basic_agent.py                    # turn 1 cached, turn 2 runs
    DISABLE_CACHE=1 uv run python stage_1_basic_agent.py    # both turns re-execute

Commands run on this machine through the explicit `host` backend (stage 1 only).
"""

from __future__ import annotations

import sys

import kitaru

from agent_harness_platform import AgentSession, ForcedFailure, Profile, SandboxSettings, run_stage

DEFAULT_PROFILE = Profile(
    name="default",
    model="openai:gpt-5-nano",
    system_prompt=(
        "You are a careful systems investigator. Use the exec tool to run shell commands, one "
        "command per question, and report only what the commands showed."
    ),
    allowed_tools={"exec"},
    sandbox=SandboxSettings(backend="host"),
)

TURN_1 = (
    "Investigate this machine: OS, kernel version, current user, number of processes, "
    "one command per question."
)
TURN_2 = (
    "Write a one-paragraph summary for someone who has never seen this machine; no new commands."
)


@kitaru.flow
def basic_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    # The turn strategy: each turn is one checkpoint, `default` then `default_2`.
    with AgentSession(
        Profile.model_validate(profile), model=model, checkpoint_strategy="turn", allow_host=True
    ) as session:
        investigation = session.turn(TURN_1)
        if force_failure:
            raise ForcedFailure(after="turn 1 (checkpoint `default`)")
        summary = session.turn(TURN_2, history=investigation.all_messages())
    return f"# Investigation\n\n{investigation.output}\n\n# Summary\n\n{summary.output}"


if __name__ == "__main__":
    sys.exit(run_stage(basic_agent, DEFAULT_PROFILE))
