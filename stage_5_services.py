"""Stage 5: typed service calls through a host-side dispatcher.

    uv run python stage_5_services.py

`exec_service("lookup_wiki", ...)` and `exec_service("publish_summary", ...)` are validated
against typed argument models, gated by the profile's allowed services, and run on the host
with credentials from Kitaru secrets: no sandbox, no proxy, no token in the model's view.
The earlier rails (sandbox, skills, credential proxy) stay on.
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
    allowed_tools={"exec", "skill", "exec_service"},
    allowed_services={"lookup_wiki", "publish_summary"},
    skill_source=LocalSkillSource("skills/with-services"),
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
def services_agent(profile: dict, model: str, force_failure: bool = False) -> str:
    with (
        demo_services() as services,
        AgentSession(
            Profile.model_validate(profile),
            model=model,
            checkpoint_strategy="turn",
            proxy_upstreams=services.proxy_upstreams,
            service_urls=services.service_urls,
        ) as session,
    ):
        result = session.turn(TASK)
        if force_failure:
            raise ForcedFailure(after="the procedure (checkpoint `default`)")
    return f"# Result\n\n{result.output}"


if __name__ == "__main__":
    sys.exit(run_stage(services_agent, DEFAULT_PROFILE))
