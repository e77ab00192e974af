"""Turn checkpoints in a real (per-process) Kitaru store: what is cached and what is not."""

from __future__ import annotations

from pathlib import Path

import kitaru
import pytest

from agent_harness_platform import AgentSession, Profile, Rails

from .fakes import ScriptedSandbox
from .test_offline import ANSWERS, TURN_1, TURN_2

SANDBOX = ScriptedSandbox(ANSWERS)


@kitaru.flow
def two_turns(profile: dict, model: str, strategy: str = "turn") -> str:
    with AgentSession(
        Profile.model_validate(profile),
        model=model,
        checkpoint_strategy="calls" if strategy == "calls" else "turn",
        rails=Rails(sandbox=SANDBOX),
    ) as session:
        first = session.turn(TURN_1)
        second = session.turn(TURN_2, history=first.all_messages())
    return str(second.output)


def base_profile(**changes: object) -> Profile:
    fields: dict[str, object] = {
        "name": "durable",
        "system_prompt": "Investigate the machine, one command per question.",
        "model": "offline",
        "allowed_tools": {"exec"},
    }
    fields.update(changes)
    return Profile.model_validate(fields)


@pytest.fixture
def call_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("AHP_MODEL_CALL_LOG", str(log))
    return log


def paid(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def run(profile: Profile) -> str:
    return str(two_turns.run(profile=profile.model_dump(mode="json"), model="offline").wait())


@pytest.mark.timeout(300)
def test_edited_prompt_re_executes_turn_one_and_unchanged_profile_is_cached(call_log: Path) -> None:
    first = run(base_profile())
    assert paid(call_log) == 6
    assert "Testix 9 (fable)" in first

    again = run(base_profile())
    assert paid(call_log) == 6, "an unchanged profile must be served from the cache"
    assert again == first

    run(base_profile(system_prompt="Investigate the machine. Be terse."))
    assert paid(call_log) == 12, "an edited system prompt must re-execute both turns"

    run(base_profile(sandbox={"command_timeout": 30}))
    assert paid(call_log) == 18, "any profile change is part of the cache key"


@pytest.mark.timeout(300)
def test_disabled_cache_re_executes(call_log: Path) -> None:
    profile = base_profile(name="uncached")
    run(profile)
    assert paid(call_log) == 6
    two_turns.run(profile=profile.model_dump(mode="json"), model="offline", cache=False).wait()
    assert paid(call_log) == 12


def test_the_store_is_this_process_own(store_root: Path) -> None:
    """Runs in the tests land in a throwaway store, never the user's ~/.config/kitaru."""
    from zenml.config.global_config import GlobalConfiguration

    config = GlobalConfiguration()
    assert Path(config.config_directory) == store_root / "config"
    assert config.store_configuration.url.startswith(f"sqlite:///{store_root}/config/")
    assert Path(config.config_directory) != Path.home() / ".config" / "kitaru"


@pytest.mark.timeout(300)
def test_calls_strategy_hits_the_cache_across_runs(call_log: Path) -> None:
    """Each model request is its own checkpoint; a second run of the same profile pays none."""
    params = base_profile(name="by-calls").model_dump(mode="json")
    first = str(two_turns.run(profile=params, model="offline", strategy="calls").wait())
    assert paid(call_log) == 6
    again = str(two_turns.run(profile=params, model="offline", strategy="calls").wait())
    assert paid(call_log) == 6, "the calls strategy must hit the cache across runs"
    assert again == first
