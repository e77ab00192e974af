"""Agent Harness Platform: declarative agent profiles, run durably on Kitaru with safe rails.

A team describes an agent as a :class:`Profile`; :func:`build_agent` turns it into a plain
PydanticAI agent with exactly the allowed tools, and :class:`AgentSession` runs it as durable
turns inside a ``@kitaru.flow`` with the sandbox, skills, credential proxy, typed services and
approval rails the profile asks for.
"""

from .agent import Rails, build_agent, build_tools, make_exec_tool
from .approval import ApprovalDecision, ApprovalGate, HumanChannel, KitaruWaitChannel
from .errors import (
    ApprovalRejected,
    ConfigurationError,
    HarnessError,
    HarnessRuntimeError,
    ProxyError,
    SandboxError,
    SandboxUnavailable,
)
from .models import OFFLINE, CountingModel, ModelChoice, choose_model, resolve_model
from .offline import OfflineModel
from .profile import TOOL_NAMES, Profile, SandboxSettings
from .proxy import CredentialProxy, ProxyRule
from .sandbox import open_sandbox
from .sandbox.base import ExecResult, Sandbox, SandboxConfig
from .services import ServiceContext, ServiceRegistry, default_registry
from .session import AgentSession, sandbox_config_for
from .skills import LocalSkillSource, SkillSource, make_skill_tool, skill_tree_hash
from .stage import ForcedFailure, env_flag, run_stage

__all__ = [
    "OFFLINE",
    "TOOL_NAMES",
    "AgentSession",
    "ApprovalDecision",
    "ApprovalGate",
    "ApprovalRejected",
    "ConfigurationError",
    "CountingModel",
    "CredentialProxy",
    "ExecResult",
    "ForcedFailure",
    "HarnessError",
    "HarnessRuntimeError",
    "HumanChannel",
    "KitaruWaitChannel",
    "LocalSkillSource",
    "ModelChoice",
    "OfflineModel",
    "Profile",
    "ProxyError",
    "ProxyRule",
    "Rails",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxSettings",
    "SandboxUnavailable",
    "ServiceContext",
    "ServiceRegistry",
    "SkillSource",
    "build_agent",
    "build_tools",
    "choose_model",
    "default_registry",
    "env_flag",
    "make_exec_tool",
    "make_skill_tool",
    "open_sandbox",
    "resolve_model",
    "run_stage",
    "sandbox_config_for",
    "skill_tree_hash",
]
