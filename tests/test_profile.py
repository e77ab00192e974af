"""Profile validation: clear errors, safe defaults, a stable round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from agent_harness_platform import LocalSkillSource, Profile, SandboxSettings


def make(**overrides: object) -> Profile:
    fields: dict[str, object] = {"name": "default", "system_prompt": "Be useful."}
    fields.update(overrides)
    return Profile.model_validate(fields)


def test_defaults_allow_nothing() -> None:
    profile = make()
    assert profile.allowed_tools == frozenset()
    assert profile.allowed_services == frozenset()
    assert profile.approval_points == frozenset()
    assert profile.sandbox.backend == "auto"


def test_unknown_tool_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValidationError) as info:
        make(allowed_tools=["exec", "rm_rf"])
    message = str(info.value)
    assert "rm_rf" in message
    assert "ask_question" in message and "exec_service" in message


def test_tools_as_a_bare_string_is_explained() -> None:
    with pytest.raises(ValidationError, match=r"write \['exec'\]"):
        make(allowed_tools="exec")


@pytest.mark.parametrize("name", ["", "Default", "has space", "-lead", "x" * 64])
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="profile name"):
        make(name=name)


def test_services_without_exec_service_is_rejected() -> None:
    with pytest.raises(ValidationError, match="exec_service"):
        make(allowed_services=["lookup_wiki"])


def test_empty_prompt_is_rejected() -> None:
    with pytest.raises(ValidationError, match="system_prompt is empty"):
        make(system_prompt="   ")


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="allowed_toolz"):
        make(allowed_toolz=["exec"])


def test_round_trip_python_and_json() -> None:
    profile = make(
        allowed_tools=["exec", "skill"],
        skill_source=LocalSkillSource("skills/basic"),
        sandbox=SandboxSettings(backend="bwrap", memory_mb=256),
    )
    assert Profile.model_validate(profile.model_dump()) == profile
    assert Profile.model_validate_json(profile.model_dump_json()) == profile
    assert (
        Profile.model_validate(json.loads(json.dumps(profile.model_dump(mode="json")))) == profile
    )


def test_fingerprint_changes_with_prompt_model_and_tools() -> None:
    base = make(allowed_tools=["exec"])
    variants = [
        make(allowed_tools=["exec"], system_prompt="Be brief."),
        make(allowed_tools=["exec"], model="offline"),
        make(allowed_tools=["exec", "skill"], skill_source={"path": "skills/basic"}),
        make(allowed_tools=["exec"], sandbox=SandboxSettings(memory_mb=1024)),
    ]
    fingerprints = {base.fingerprint(), *(v.fingerprint() for v in variants)}
    assert len(fingerprints) == 1 + len(variants)


def test_fingerprint_is_the_same_in_another_process() -> None:
    """Set order is randomised per process; the fingerprint must not be."""
    profile = make(
        allowed_tools=["exec", "skill", "ask_question", "exec_service"],
        skill_source={"path": "skills/basic"},
    )
    code = (
        "from agent_harness_platform import Profile; import sys, json;"
        "print(Profile.model_validate(json.loads(sys.argv[1])).fingerprint())"
    )
    seen = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", code, profile.model_dump_json()],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        seen.add(out.stdout.strip())
    assert seen == {profile.fingerprint()}


def test_skill_tool_without_a_source_is_rejected() -> None:
    with pytest.raises(ValidationError, match="skill_source is not set"):
        make(allowed_tools=["skill"])
