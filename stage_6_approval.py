"""Stage 6: durable human input and approval with kitaru.wait().

    uv run python stage_6_approval.py

The agent drafts a summary, asks a person for its closing line (`ask_question`), and pauses
again before `publish_summary` (an approval point) showing the exact arguments. On a terminal
you answer at the prompt. Without one, the run prints the execution id and the commands that
answer it from another terminal:

    uv run ahp pending                      # what is waiting, with the questions
    uv run ahp answer <execution> "Verified by the on-call team"
    uv run ahp approve <execution>          # or: uv run ahp reject <execution> --reason "..."

If the waiting process is gone (closed terminal, kill -9), `ahp answer` / `ahp approve`
resume the run from the same point: finished model calls are not paid again.
"""

from __future__ import annotations

import sys

import kitaru

from agent_harness_platform import (
    AgentSession,
    ForcedFailure,
    LocalSkillSource,
    Profile,
    ProxyRule,
    run_stage,
)
from mocks.demo import demo_services

DEFAULT_PROFILE = Profile(
    name="default",
    model="openai:gpt-5-nano",
    system_prompt=(
        "You follow written procedures. List your skills, read yours (default-agent), and "
        "follow it exactly: one tool call per step, in order, nothing else."
    ),
    allowed_tools={"exec", "skill", "exec_service", "ask_question"},
    allowed_services={"lookup_wiki", "publish_summary"},
    approval_points={"publish_summary"},
    skill_source=LocalSkillSource("skills/with-hitl"),
    proxy_rules=(
        ProxyRule(
            name="wiki-auth",
            hosts=["wiki.local"],
            headers={"Authorization": "Bearer {{ wiki-token.value }}"},
        ),
    ),
)

TASK = "Carry out your procedure and return the result."


@kitaru.flow
def approval_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    # The calls strategy: waits happen at flow scope between per-call checkpoints.
    with (
        demo_services() as services,
        AgentSession(
            Profile.model_validate(profile),
            model=model,
            checkpoint_strategy="calls",
            proxy_upstreams=services.proxy_upstreams,
            service_urls=services.service_urls,
        ) as session,
    ):
        result = session.turn(TASK)
        if force_failure:
            raise ForcedFailure(after="the procedure")
    return f"# Result\n\n{result.output}"


if __name__ == "__main__":
    sys.exit(run_stage(approval_agent, DEFAULT_PROFILE))
