"""build_tools / build_agent: exactly the allowed tools; exec errors go back to the model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_harness_platform import ConfigurationError, Profile, Rails, build_agent, build_tools
from agent_harness_platform.sandbox.base import ExecResult

from .fakes import ScriptedSandbox, timed_out_result


def profile(*tools: str) -> Profile:
    source = {"path": "skills/basic"} if "skill" in tools else None
    return Profile.model_validate(
        {
            "name": "tester",
            "system_prompt": "Test.",
            "model": "offline",
            "allowed_tools": set(tools),
            "skill_source": source,
        }
    )


def test_empty_tool_set_builds_no_tools() -> None:
    assert build_tools(profile()) == []
    agent = build_agent(profile())
    assert agent.name == "tester"
    assert isinstance(agent, Agent)


def test_only_allowed_tools_are_built() -> None:
    tools = build_tools(profile("exec"), Rails(sandbox=ScriptedSandbox()))
    assert [t.name for t in tools] == ["exec"]


@pytest.mark.parametrize(
    ("tool", "needle"),
    [
        ("exec", "no sandbox"),
        ("skill", "no skill root"),
        ("exec_service", "ServiceContext"),
        ("ask_question", "ask"),
    ],
)
def test_allowed_tool_without_its_rail_is_a_configuration_error(tool: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        build_tools(profile(tool))


def _scripted(calls: list[dict[str, Any]]) -> tuple[FunctionModel, list[Any]]:
    """A model that makes the given exec calls one by one, then reports what came back."""
    seen: list[Any] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        for part in last.parts:
            if isinstance(part, ToolReturnPart):
                seen.append(part.content)
            elif isinstance(part, RetryPromptPart):
                seen.append(("retry", part.model_response()))
        if len(seen) < len(calls):
            return ModelResponse(
                parts=[ToolCallPart("exec", calls[len(seen)], tool_call_id=f"c{len(seen)}")]
            )
        return ModelResponse(parts=[TextPart(json.dumps(seen, default=str))])

    return FunctionModel(respond), seen


def test_exec_timeout_is_reported_to_the_model_not_raised() -> None:
    sandbox = ScriptedSandbox({"sleep 1000": timed_out_result(1.0)})
    model, seen = _scripted([{"command": "sleep 1000", "timeout": 1}])
    agent = build_agent(profile("exec"), model=model, rails=Rails(sandbox=sandbox))
    agent.run_sync("go")
    assert sandbox.commands == [("sleep 1000", 1)]
    result = seen[0]
    assert result["timed_out"] is True
    assert "killed" in result["note"] and "shell" in result["note"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"command": "   "}, "`command` is empty"),
        ({"command": "true", "timeout": 0}, "out of range"),
        ({"command": "true", "timeout": 601}, "out of range"),
    ],
)
def test_bad_exec_arguments_go_back_as_model_retry(args: dict[str, Any], needle: str) -> None:
    sandbox = ScriptedSandbox()
    model, seen = _scripted([args])
    agent = build_agent(profile("exec"), model=model, rails=Rails(sandbox=sandbox))
    agent.run_sync("go")
    assert sandbox.commands == []
    kind, message = seen[0]
    assert kind == "retry" and needle in message


def test_exec_returns_structured_result() -> None:
    answer = ExecResult(exit_code=3, stdout="out\n", stderr="err\n", cwd="/tmp", duration=0.01)
    sandbox = ScriptedSandbox({"false-ish": answer})
    model, seen = _scripted([{"command": "false-ish"}])
    agent = build_agent(profile("exec"), model=model, rails=Rails(sandbox=sandbox))
    agent.run_sync("go")
    assert seen[0]["exit_code"] == 3
    assert seen[0]["stdout"] == "out\n" and seen[0]["stderr"] == "err\n"
    assert seen[0]["cwd"] == "/tmp"
    assert sandbox.commands == [("false-ish", 120.0)]
