"""Test doubles at the seams (never patches of private functions)."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pydantic_ai import Agent, Tool
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_harness_platform.sandbox.base import ExecResult


class ScriptedSandbox:
    """A Sandbox that runs nothing and answers from a table; records what it was asked."""

    backend = "scripted"

    def __init__(self, answers: dict[str, ExecResult] | None = None) -> None:
        self.id = "scripted"
        self.answers = answers or {}
        self.commands: list[tuple[str, float | None]] = []
        self.cwd = "/workspace"

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> ScriptedSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def run(self, command: str, *, timeout: float | None = None) -> ExecResult:
        self.commands.append((command, timeout))
        if command in self.answers:
            return self.answers[command]
        # Runs nothing: an unscripted command "succeeds" silently where the last one left off.
        return ExecResult(0, "", "", self.cwd)


def timed_out_result(seconds: float) -> ExecResult:
    """What a sandbox returns for a command killed at its timeout."""
    return ExecResult(
        exit_code=124, stdout="", stderr="", cwd="/workspace", timed_out=True, duration=seconds
    )


@dataclass
class ToolOutcome:
    """What the scripted model saw after its one tool call."""

    returned: Any = None
    retry: str | None = None


def call_tool(tool: Tool[Any], **args: Any) -> ToolOutcome:
    """Have a FunctionModel call ``tool`` once with ``args``; return what came back to it."""
    outcome = ToolOutcome()

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart(tool.name, args, tool_call_id="call-1")])
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        for part in last.parts:
            if isinstance(part, ToolReturnPart):
                outcome.returned = part.content
            elif isinstance(part, RetryPromptPart):
                outcome.retry = part.model_response()
        return ModelResponse(parts=[TextPart("done")])

    Agent(FunctionModel(model), tools=[tool]).run_sync("go")
    return outcome


def seen_tool_definition(tool: Tool[Any]) -> tuple[str, dict[str, Any]]:
    """The description and parameter schema the model receives for ``tool``."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.extend((t.description or "", t.parameters_json_schema) for t in info.function_tools)
        return ModelResponse(parts=[TextPart("done")])

    Agent(FunctionModel(model), tools=[tool]).run_sync("go")
    return seen[0]
