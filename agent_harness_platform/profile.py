"""The declarative description of an agent: what a team writes, and all the platform reads.

A :class:`Profile` names the model, the prompt and every permission the agent has. Empty or
unset always means "allow nothing": a profile with no ``allowed_tools`` gets no tools, one
with no ``allowed_services`` can call no service, and the sandbox has no network unless proxy
rules give it one.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from .proxy.rules import ProxyRule
from .skills.source import LocalSkillSource

__all__ = [
    "TOOL_NAMES",
    "Profile",
    "SandboxSettings",
    "ToolName",
]

ToolName = Literal["exec", "skill", "exec_service", "ask_question"]
"""The tools a profile may allow."""

TOOL_NAMES: frozenset[str] = frozenset({"exec", "skill", "exec_service", "ask_question"})

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class SandboxSettings(BaseModel):
    """Where and under which limits the agent's shell commands run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "bwrap", "docker", "host"] = Field(
        default="auto",
        description=(
            "Sandbox backend. `auto` picks docker when an engine and the image are available, "
            "else bubblewrap; it never picks `host`. `host` runs commands unisolated on this "
            "machine and is only accepted where a stage explicitly allows it (stage 1). "
            "The environment variable AHP_SANDBOX overrides this field."
        ),
    )
    memory_mb: int = Field(default=512, ge=32, le=65536, description="Memory limit in MiB.")
    pids_max: int = Field(
        default=256, ge=8, le=65536, description="Most processes the sandbox may hold at once."
    )
    cpu_quota: float = Field(
        default=1.0, gt=0.0, le=64.0, description="CPUs the sandbox may use (0.5 = half a core)."
    )
    tmp_size_mb: int = Field(default=64, ge=1, le=65536, description="Size cap of /tmp in MiB.")
    command_timeout: float = Field(
        default=120.0,
        gt=0.0,
        le=600.0,
        description="Seconds one command may run before it is killed (the shell survives).",
    )
    max_output_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Cap on each of stdout and stderr returned for one command.",
    )


class Profile(BaseModel):
    """A declarative agent: model, prompt, and the rails it runs on.

    Round-trips through ``model_dump()`` / ``model_validate()`` (also in JSON mode), so a
    profile can live in a team's repo as YAML or JSON and be passed to a flow as a parameter.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        description=(
            "Agent name: lowercase letters, digits, '-' and '_'. Names the PydanticAI agent, "
            "its Kitaru checkpoints (`<name>`, `<name>_2`, ...) and the skill folder it reads."
        ),
    )
    system_prompt: str = Field(description="Instructions the model gets on every turn.")
    model: str = Field(
        default="openai:gpt-5-nano",
        description=(
            "Model as `provider:model-name` (`openai:...`, `anthropic:...`) or `offline` for "
            "the deterministic scripted stand-in. A provider model needs its API key."
        ),
    )
    allowed_tools: frozenset[ToolName] = Field(
        default_factory=frozenset,
        description=(
            "Tools the agent may call: exec, skill, exec_service, ask_question. Empty: none."
        ),
    )
    allowed_services: frozenset[str] = Field(
        default_factory=frozenset,
        description="Services `exec_service` may call (e.g. lookup_wiki). Empty: none.",
    )
    approval_points: frozenset[str] = Field(
        default_factory=frozenset,
        description=(
            "Tool or service names that need a person's approval before each call "
            "(e.g. `publish_summary`). The approval is bound to the exact arguments."
        ),
    )
    skill_source: LocalSkillSource | None = Field(
        default=None,
        description=(
            "Where the agent's SKILL.md procedures live (needed by the `skill` tool). The files "
            "are part of every turn's cache key: editing one re-executes the next run."
        ),
    )
    proxy_rules: tuple[ProxyRule, ...] = Field(
        default=(),
        description=(
            "Credential rules of the proxy: which headers (with {{ secret.key }} templates "
            "resolved on the host) are injected for which hosts. With no rules and no "
            "allowed_hosts the sandbox has no network at all."
        ),
    )
    allowed_hosts: frozenset[str] = Field(
        default_factory=frozenset,
        description=(
            "Hosts the sandbox may reach through the proxy without any credential. Every "
            "host that is neither here nor in a rule is denied."
        ),
    )
    sandbox: SandboxSettings = Field(
        default_factory=SandboxSettings, description="Sandbox backend and limits for `exec`."
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                f"profile name {value!r} must be 1-63 lowercase letters, digits, '-' or '_', "
                "starting with a letter or digit (it names checkpoints and a skill folder)"
            )
        return value

    @field_validator("allowed_tools", mode="before")
    @classmethod
    def _check_tools(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                f"allowed_tools must be a set of tool names, not the string {value!r}; "
                f"write [{value!r}]"
            )
        if isinstance(value, (list, tuple, set, frozenset)):
            unknown = sorted(str(v) for v in value if v not in TOOL_NAMES)
            if unknown:
                raise ValueError(
                    f"unknown tool name(s) {unknown} in allowed_tools; "
                    f"the platform provides {sorted(TOOL_NAMES)}"
                )
        return value

    @field_validator("system_prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("system_prompt is empty; say what the agent is for")
        return value

    @field_serializer("allowed_tools", "allowed_services", "approval_points", "allowed_hosts")
    def _sorted_set(self, value: frozenset[str]) -> list[str]:
        # Sets dump sorted so the dump, and so the fingerprint, is the same in every process
        # (string hashing, and so set order, is randomised per process).
        return sorted(value)

    @model_validator(mode="after")
    def _check_consistency(self) -> Profile:
        if self.allowed_services and "exec_service" not in self.allowed_tools:
            raise ValueError(
                "allowed_services is set but the exec_service tool is not allowed; "
                "add 'exec_service' to allowed_tools or clear allowed_services"
            )
        gated_tools = {p for p in self.approval_points if p in TOOL_NAMES}
        unknown_points = self.approval_points - gated_tools - self.allowed_services
        if unknown_points:
            raise ValueError(
                f"approval_points {sorted(unknown_points)} name neither a tool nor an allowed "
                "service; name a tool from allowed_tools or a service from allowed_services"
            )
        if "ask_question" in gated_tools:
            raise ValueError(
                "ask_question already waits for a person; it cannot be an approval point"
            )
        if "skill" in self.allowed_tools and self.skill_source is None:
            raise ValueError(
                "the skill tool is allowed but skill_source is not set; set "
                "skill_source=LocalSkillSource('skills/...') or remove 'skill' from allowed_tools"
            )
        return self

    def needs_a_person(self) -> bool:
        """True when a run of this profile can pause for a person (ask_question, approvals)."""
        return "ask_question" in self.allowed_tools or bool(self.approval_points)

    def fingerprint(self) -> str:
        """A stable hash of everything in the profile (prompt, model, tools, rails).

        Part of every turn's cache key, so editing the profile never serves a stale turn.
        """
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
