"""The project's own checks run with the suite: lint, format, types, and the public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import agent_harness_platform

from .conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "agent_harness_platform", "mocks"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
@pytest.mark.timeout(600)
def test_tool_is_clean(command: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


PUBLIC_API = {
    "default_registry",
    "ServiceRegistry",
    "ServiceContext",
    "SandboxConfig",
    "Sandbox",
    "ExecResult",
    "open_sandbox",
    "ProxyRule",
    "CredentialProxy",
    "KitaruWaitChannel",
    "HumanChannel",
    "ApprovalGate",
    "ApprovalDecision",
    "OFFLINE",
    "TOOL_NAMES",
    "AgentSession",
    "ApprovalRejected",
    "ConfigurationError",
    "CountingModel",
    "ForcedFailure",
    "HarnessError",
    "HarnessRuntimeError",
    "LocalSkillSource",
    "ModelChoice",
    "OfflineModel",
    "Profile",
    "ProxyError",
    "Rails",
    "SandboxError",
    "SandboxSettings",
    "SandboxUnavailable",
    "SkillSource",
    "build_agent",
    "build_tools",
    "choose_model",
    "env_flag",
    "make_exec_tool",
    "make_skill_tool",
    "resolve_model",
    "run_stage",
    "sandbox_config_for",
    "skill_tree_hash",
}


def test_public_api_is_pinned() -> None:
    assert set(agent_harness_platform.__all__) == PUBLIC_API
    for name in PUBLIC_API:
        assert getattr(agent_harness_platform, name) is not None
