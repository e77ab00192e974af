"""Stage 4: a separate credential proxy injects auth; the worker never sees a secret.

    uv run python stage_4_proxy.py

The agent curls http://wiki.local/snippets/durability from inside the sandbox with no auth
header. The sandbox can reach only the proxy, which checks the per-run proxy token, injects
`Authorization: Bearer <wiki-token>` for wiki.local (the token comes from the Kitaru secret
`wiki-token` and never enters the sandbox), and routes wiki.local to the local mock server.
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
    allowed_tools={"exec", "skill"},
    skill_source=LocalSkillSource("skills/with-wiki"),
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
def proxy_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    with (
        demo_services() as services,
        AgentSession(
            Profile.model_validate(profile),
            model=model,
            checkpoint_strategy="turn",
            proxy_upstreams=services.proxy_upstreams,
        ) as session,
    ):
        result = session.turn(TASK)
        if force_failure:
            raise ForcedFailure(after="the procedure (checkpoint `default`)")
    return f"# Result\n\n{result.output}"


if __name__ == "__main__":
    sys.exit(run_stage(proxy_agent, DEFAULT_PROFILE))
