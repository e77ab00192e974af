"""Model resolution: never a silent fallback in the library; one clear line in the stages."""

from __future__ import annotations

import pytest

from agent_harness_platform import (
    OFFLINE,
    ConfigurationError,
    OfflineModel,
    Profile,
    build_agent,
    choose_model,
    resolve_model,
)


def test_offline_is_explicit() -> None:
    assert isinstance(resolve_model("offline", env={}), OfflineModel)


@pytest.mark.parametrize(
    ("spec", "variable"),
    [("openai:gpt-5-nano", "OPENAI_API_KEY"), ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY")],
)
def test_provider_without_key_names_the_variable(spec: str, variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable) as info:
        resolve_model(spec, env={})
    assert "offline" in str(info.value)


def test_build_agent_without_key_fails_at_build_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    profile = Profile(name="default", system_prompt="x", model="openai:gpt-5-nano")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        build_agent(profile)


def test_keys_resolve_to_provider_models() -> None:
    openai = resolve_model("openai:gpt-5-nano", env={"OPENAI_API_KEY": "sk-test"})
    anthropic = resolve_model("anthropic:claude-x", env={"ANTHROPIC_API_KEY": "sk-ant-test"})
    assert openai.model_name == "gpt-5-nano"
    assert anthropic.model_name == "claude-x"


def test_local_openai_compatible_server_needs_no_key() -> None:
    model = resolve_model("openai:llama3.2", env={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert model.model_name == "llama3.2"
    assert "127.0.0.1:11434" in str(model.base_url)


@pytest.mark.parametrize("spec", ["gpt-5", "openai:", ":x", "mystery:model"])
def test_malformed_or_unknown_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=spec.split(":")[0] or "provider"):
        resolve_model(spec, env={})


def test_stage_choice_falls_back_to_offline_with_one_line() -> None:
    choice = choose_model("openai:gpt-5-nano", env={})
    assert choice.spec == OFFLINE
    assert choice.announcement is not None
    assert "OPENAI_API_KEY" in choice.announcement and "AHP_MODEL" in choice.announcement
    assert "\n" not in choice.announcement


def test_stage_choice_prefers_ahp_model_then_profile() -> None:
    assert choose_model("openai:gpt-5-nano", env={"AHP_MODEL": "offline"}).spec == "offline"
    keyed = choose_model("openai:gpt-5-nano", env={"OPENAI_API_KEY": "sk"})
    assert keyed.spec == "openai:gpt-5-nano"
