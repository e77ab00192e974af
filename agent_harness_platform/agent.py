"""From a Profile to a plain PydanticAI agent with exactly the tools the profile allows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_ai import Agent, ModelRetry, Tool
from pydantic_ai.models import Model
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from ._kitaru import log_metadata
from .approval import ApprovalGate, ApprovalToolset, make_ask_question_tool
from .errors import ConfigurationError
from .models import resolve_model
from .profile import Profile
from .sandbox.base import MAX_TIMEOUT, ExecResult, Sandbox

if TYPE_CHECKING:
    from .services import ServiceContext, ServiceRegistry

__all__ = ["Rails", "build_agent", "build_tools", "make_exec_tool"]

logger = logging.getLogger("agent_harness_platform.sandbox")


@dataclass(frozen=True)
class Rails:
    """The live resources tools are bound to. A tool the profile allows needs its rail."""

    sandbox: Sandbox | None = None
    """Where `exec` runs commands."""
    skill_root: Path | None = None
    """Resolved skill directory for the `skill` tool."""
    services: ServiceContext | None = None
    """Host-side context (URLs, secrets, run key) for `exec_service`."""
    registry: ServiceRegistry | None = None
    """Service registry; the default registry when None."""
    on_skill_read: Callable[[str], None] | None = None
    """Called with each skill file the agent reads (recorded in run metadata)."""
    ask: Callable[[str], str] | None = None
    """Asks a person a question and returns the answer (the `ask_question` tool)."""
    before_service_call: Callable[[str, Any], None] | None = None
    """Hook run with validated service args just before a handler (approval points)."""


def _exec_payload(result: ExecResult, timeout: float) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "cwd": result.cwd,
        "timed_out": result.timed_out,
        "truncated": result.truncated,
        "duration_s": round(result.duration, 3),
    }
    if result.timed_out:
        payload["note"] = (
            f"The command ran longer than {timeout:g}s and was killed. The shell and its working "
            "directory are kept; run something shorter or pass a larger timeout (max "
            f"{MAX_TIMEOUT:g}s)."
        )
    if result.restarted:
        payload["restarted"] = True
        payload["note"] = (
            "The previous shell had exited, so this command ran in a fresh shell: the working "
            "directory and variables were reset."
        )
    return payload


def make_exec_tool(sandbox: Sandbox, *, default_timeout: float = 120.0) -> Tool[Any]:
    """The `exec` tool: one shell command in the agent's sandbox, with a timeout."""

    counter = iter(range(1, 1_000_000))

    def exec(command: str, timeout: float | None = None) -> dict[str, Any]:
        """Run one shell command in your sandbox's persistent bash shell.

        The working directory, variables and functions persist between calls. Returns the
        exit code, stdout, stderr (both capped), the working directory afterwards, and
        whether the command timed out.

        Args:
            command: The bash command line to run.
            timeout: Seconds before the command is killed (default from the profile, max 600).
        """
        if not command.strip():
            raise ModelRetry("`command` is empty; pass the shell command line to run.")
        limit = default_timeout if timeout is None else timeout
        if not 0 < limit <= MAX_TIMEOUT:
            raise ModelRetry(
                f"timeout={timeout!r} is out of range; use a number of seconds in "
                f"(0, {MAX_TIMEOUT:g}] or leave it out."
            )
        result = sandbox.run(command, timeout=limit)
        log_metadata(
            sandbox_commands={
                f"{sandbox.id}_{next(counter):04d}": {
                    "command": command[:500],
                    "exit_code": result.exit_code,
                    "stdout_chars": len(result.stdout),
                    "cwd": result.cwd,
                    "timed_out": result.timed_out,
                    "duration_s": round(result.duration, 3),
                    "backend": sandbox.backend,
                }
            }
        )
        return _exec_payload(result, limit)

    return Tool(exec, name="exec", takes_ctx=False)


def build_tools(profile: Profile, rails: Rails | None = None) -> list[Tool[Any]]:
    """The tools ``profile.allowed_tools`` names, bound to ``rails``; nothing else.

    An allowed tool whose rail is missing is a configuration error, never a silently
    missing tool.
    """
    rails = rails or Rails()
    tools: list[Tool[Any]] = []
    allowed = profile.allowed_tools
    if "exec" in allowed:
        if rails.sandbox is None:
            raise ConfigurationError(
                f"profile {profile.name!r} allows `exec` but no sandbox was given; "
                "pass Rails(sandbox=...) (see agent_harness_platform.sandbox.open_sandbox)"
            )
        tools.append(make_exec_tool(rails.sandbox, default_timeout=profile.sandbox.command_timeout))
    if "skill" in allowed:
        if rails.skill_root is None:
            raise ConfigurationError(
                f"profile {profile.name!r} allows `skill` but no skill root was given; pass "
                "Rails(skill_root=profile.skill_source.resolve()) (AgentSession does this)"
            )
        from .skills import make_skill_tool

        tools.append(make_skill_tool(rails.skill_root, on_read=rails.on_skill_read))
    if "exec_service" in allowed:
        if rails.services is None:
            raise ConfigurationError(
                f"profile {profile.name!r} allows `exec_service` but no ServiceContext was given; "
                "pass Rails(services=ServiceContext(...))"
            )
        from .services import default_registry, make_exec_service_tool

        tools.append(
            make_exec_service_tool(
                rails.registry or default_registry(),
                profile.allowed_services,
                rails.services,
                before_call=rails.before_service_call,
            )
        )
    if "ask_question" in allowed:
        if rails.ask is None:
            raise ConfigurationError(
                f"profile {profile.name!r} allows `ask_question` but nothing was given to ask "
                "a person with; pass Rails(ask=...) (see agent_harness_platform.approval)"
            )
        tools.append(make_ask_question_tool(rails.ask))
    return tools


def build_agent(
    profile: Profile,
    *,
    model: Model | None = None,
    rails: Rails | None = None,
    approval: ApprovalGate | None = None,
) -> Agent[None, str]:
    """A plain ``pydantic_ai.Agent`` named after the profile, with only its allowed tools.

    ``model`` defaults to ``resolve_model(profile.model)``, which raises a
    ConfigurationError naming the missing API key variable rather than falling back.
    With ``approval``, tools named as approval points pause for a person before each call
    (services are gated by the same gate through ``Rails.before_service_call``).
    """
    resolved = model if model is not None else resolve_model(profile.model)
    toolset: AbstractToolset[None] = FunctionToolset(build_tools(profile, rails))
    if approval is not None:
        toolset = ApprovalToolset(toolset, gate=approval)
    return Agent(
        resolved,
        name=profile.name,
        instructions=profile.system_prompt,
        toolsets=[toolset],
        output_type=str,
    )
