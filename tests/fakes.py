"""Test doubles at the seams (never patches of private functions)."""

from __future__ import annotations

from types import TracebackType

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
