"""Stage 3: operator-editable procedures. The agent follows skills/basic/default-agent/SKILL.md.

    uv run python stage_3_skills.py

Edit the SKILL.md (say, add a step that runs `date`) and run it again: the new step runs, with
no Python edit and no DISABLE_CACHE (the skill files are part of the turn's cache key).
Commands run in the bubblewrap sandbox, as in stage 2.
"""

from __future__ import annotations

import sys

import kitaru

from agent_harness_platform import AgentSession, ForcedFailure, LocalSkillSource, Profile, run_stage

DEFAULT_PROFILE = Profile(
    name="default",
    model="openai:gpt-5-nano",
    system_prompt=(
        "You follow written procedures. List your skills, read yours (default-agent), and "
        "follow it exactly: one tool call per step, in order, nothing else."
    ),
    allowed_tools={"exec", "skill"},
    skill_source=LocalSkillSource("skills/basic"),
)

TASK = "Carry out your procedure and return the result."


@kitaru.flow
def skills_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    with AgentSession(
        Profile.model_validate(profile), model=model, checkpoint_strategy="turn"
    ) as session:
        result = session.turn(TASK)
        if force_failure:
            raise ForcedFailure(after="the procedure (checkpoint `default`)")
    return f"# Result\n\n{result.output}"


if __name__ == "__main__":
    sys.exit(run_stage(skills_agent, DEFAULT_PROFILE))
