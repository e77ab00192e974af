"""Stage 2: shell commands run in an isolated bubblewrap sandbox, never on the host.

    uv run python stage_2_sandbox.py
    FORCE_FAILURE=1 uv run python stage_2_sandbox.py   # crash after turn 1; re-run resumes
    DISABLE_CACHE=1 uv run python stage_2_sandbox.py

One long-lived sandbox shell serves both turns: the `cd /tmp` of turn 1 still holds in
turn 2, so summary.txt lands in the sandbox's private /tmp (never on the host).
"""

from __future__ import annotations

import sys

import kitaru

from agent_harness_platform import AgentSession, ForcedFailure, Profile, run_stage

DEFAULT_PROFILE = Profile(
    name="default",
    model="openai:gpt-5-nano",
    system_prompt=(
        "You are a careful systems investigator working in a sandboxed shell. Use the exec "
        "tool, one command per question, and report only what the commands showed."
    ),
    allowed_tools={"exec"},
)

TURN_1 = (
    "Investigate this machine: OS, kernel version, current user, one command each, "
    "then cd into /tmp."
)
TURN_2 = "Write a brief 2-sentence summary to summary.txt in the current directory, then cat it."


@kitaru.flow
def sandbox_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    with AgentSession(
        Profile.model_validate(profile), model=model, checkpoint_strategy="turn"
    ) as session:
        investigation = session.turn(TURN_1)
        if force_failure:
            raise ForcedFailure(after="turn 1 (checkpoint `default`)")
        summary = session.turn(TURN_2, history=investigation.all_messages())
    return f"# Investigation\n\n{investigation.output}\n\n# Summary\n\n{summary.output}"


if __name__ == "__main__":
    sys.exit(run_stage(sandbox_agent, DEFAULT_PROFILE))
