"""Stage 5 end to end, and the narrowed-services case, against the real mock server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_harness_platform import LocalSkillSource, Profile, Rails, build_agent
from agent_harness_platform.services import ServiceContext
from mocks.server import MockServices

from .conftest import PROJECT_ROOT
from .e2e_helpers import DemoTokens, prepare_store, run_script
from .fakes import ScriptedSandbox
from .test_offline import ANSWERS


@pytest.fixture
def store(fresh_store_env: dict[str, str]) -> tuple[dict[str, str], DemoTokens]:
    return fresh_store_env, prepare_store(fresh_store_env)


@pytest.fixture
def mock(store: tuple[dict[str, str], DemoTokens]) -> Iterator[MockServices]:
    _, tokens = store
    with MockServices(wiki_token=tokens.wiki, webhook_token=tokens.webhook) as running:
        yield running


@pytest.mark.timeout(600)
def test_stage_5_publishes_exactly_once_with_the_bot_token(
    store: tuple[dict[str, str], DemoTokens], mock: MockServices
) -> None:
    env, tokens = store
    done = run_script("stage_5_services.py", {**env, "AHP_MOCK_URL": mock.base_url})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    posts = mock.records()
    assert len(posts) == 1  # recorded only past the Bot-token check
    assert posts[0]["webhook_id"] == "team-summaries"
    assert any(
        "POST /webhooks/team-summaries" in line and "auth=Bot" in line and "→ 200" in line
        for line in mock.log_lines()
    )
    match = re.search(r"Published (msg_[0-9a-f]+) at (\S+): (.+)", done.stdout)
    assert match, done.stdout
    assert match.group(1) == posts[0]["message_id"]
    assert match.group(3).strip() == posts[0]["content"]
    assert "[services] lookup_wiki topic='durability' → 2 snippets" in done.stdout
    # Service calls are host-side: no sandbox command and no proxy traffic for them.
    assert "[sandbox] $ curl" not in done.stdout
    assert "[proxy] injected" not in done.stdout
    for secret in (tokens.wiki, tokens.webhook):
        assert secret not in output


def test_narrowed_services_cannot_publish_and_post_nothing(tmp_path: Path) -> None:
    wiki, hook = "wiki-narrow-token", "hook-narrow-token"
    profile = Profile(
        name="default",
        model="offline",
        system_prompt="List your skills, read yours (default-agent), follow it exactly.",
        allowed_tools={"exec", "skill", "exec_service"},
        allowed_services={"lookup_wiki"},
        skill_source=LocalSkillSource(PROJECT_ROOT / "skills" / "with-services"),
    )
    with MockServices(wiki_token=wiki, webhook_token=hook) as local:
        context = ServiceContext(
            wiki_url=local.base_url,
            webhook_url=local.base_url,
            run_key="narrowed",
            secret_lookup=lambda name: {
                "wiki-token": {"value": wiki},
                "webhook-token": {"value": hook},
            }[name],
        )
        rails = Rails(
            sandbox=ScriptedSandbox(ANSWERS),
            services=context,
            skill_root=profile.skill_source.resolve() if profile.skill_source else None,
        )
        result = build_agent(profile, rails=rails).run_sync(
            "Carry out your procedure and return the result."
        )
        assert local.records() == []
    assert "publish_summary" in result.output
    assert "not available" in result.output and "lookup_wiki" in result.output
    assert "Published" not in result.output
