"""Human input and approval points, made durable with ``kitaru.wait()``.

What it defends against: an agent taking a side effect a person has not seen (approval points
pause before the call and show the exact arguments), an approval being reused for different
arguments (each approval is bound to a digest of the arguments: new arguments, new question),
and lost decisions (every decision and approver is recorded in the run's metadata, and a run
killed while waiting resumes from the same point once answered).

What it does not defend against: a person approving something they should not have, or a
tool that is not named as an approval point.

Waits must happen at flow scope, never inside a checkpoint, so tools that wait are opted out
of the adapter's tool checkpoints and runs that wait use the ``calls`` checkpoint strategy
(see :mod:`agent_harness_platform.session`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai import ModelRetry, Tool
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from ._kitaru import log_metadata
from .errors import ApprovalRejected, ConfigurationError

__all__ = [
    "ApprovalDecision",
    "ApprovalGate",
    "ApprovalToolset",
    "HumanChannel",
    "KitaruWaitChannel",
    "args_digest",
    "make_ask_question_tool",
]

logger = logging.getLogger("agent_harness_platform.approval")

ASK_QUESTION_TOOL = "ask_question"
DEFAULT_POLL_SECONDS = 600
"""How long a waiting process polls for the answer before it pauses the run and exits."""


class ApprovalDecision(BaseModel):
    """A person's answer to an approval point (the schema of the wait)."""

    model_config = ConfigDict(extra="forbid")

    approved: bool = Field(description="True to let the call run once; false to refuse it.")
    reason: str | None = Field(default=None, description="Why, shown to the model on a refusal.")
    approver: str | None = Field(default=None, description="Who decided (recorded in the run).")


class HumanChannel(Protocol):
    """The seam through which a run asks a person something and gets a typed answer."""

    def ask(self, *, name: str, question: str, schema: Any) -> Any:
        """Block until a person answers ``question``; return a value of ``schema``."""


def args_digest(action: str, args: Mapping[str, Any]) -> str:
    """A stable digest of an action and its exact arguments."""
    canonical = json.dumps({"action": action, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:40] or "x"


@dataclass
class KitaruWaitChannel:
    """Asks through ``kitaru.wait()``: a prompt on a terminal, otherwise a durable pause.

    Without a terminal it prints the question, the execution id and the exact command that
    answers it, then polls (``poll_seconds``) and continues in the same process once
    answered. If the process is gone by then, ``ahp answer`` resumes the run.
    """

    poll_seconds: int = DEFAULT_POLL_SECONDS
    command: str = "uv run ahp"

    def ask(self, *, name: str, question: str, schema: Any) -> Any:
        import kitaru
        from kitaru.runtime import current_execution_id

        exec_id = current_execution_id()
        if exec_id is None:
            raise ConfigurationError(
                "a question or approval needs a Kitaru flow to wait in; run the agent inside a "
                "@kitaru.flow (AgentSession with checkpoint_strategy='calls')"
            )
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        interactive = interactive and os.environ.get(
            "ZENML_DISABLE_INTERACTIVE_INPUT", ""
        ).lower() not in {"1", "true"}
        log_metadata(ahp_waiting={name: {"pid": os.getpid(), "question": question[:500]}})
        logger.info("[approval] waiting for a person: %s", question)
        if not interactive:
            logger.info("[approval]   execution %s, wait %s", exec_id, name)
            if schema is str:
                logger.info(
                    '[approval]   answer from another terminal: %s answer %s "your answer"',
                    self.command,
                    exec_id,
                )
                kitaru_value = "'\"your answer\"'"
            else:
                logger.info(
                    "[approval]   decide from another terminal: %s approve %s   or   "
                    "%s reject %s --reason '...'",
                    self.command,
                    exec_id,
                    self.command,
                    exec_id,
                )
                kitaru_value = "'{\"approved\": true}'"
            logger.info(
                "[approval]   (or: kitaru executions input %s --value %s)", exec_id, kitaru_value
            )
        return kitaru.wait(schema=schema, name=name, question=question, timeout=self.poll_seconds)


@dataclass
class ApprovalGate:
    """Pauses before each call to an approval point and lets it run only when approved."""

    points: frozenset[str]
    channel: HumanChannel
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def requires(self, action: str) -> bool:
        return action in self.points

    def check(self, action: str, args: Mapping[str, Any]) -> ApprovalDecision:
        """Ask for approval of ``action(args)``; raise :class:`ApprovalRejected` on a no."""
        digest = args_digest(action, args)
        name = f"approve_{_safe_name(action)}_{digest[:16]}"
        shown = json.dumps(dict(args), indent=2, sort_keys=True, default=str)
        question = (
            f"Approve {action} with exactly these arguments (digest {digest[:16]})?\n{shown}\n"
            'Answer {"approved": true} or {"approved": false, "reason": "..."}.'
        )
        raw = self.channel.ask(name=name, question=question, schema=ApprovalDecision)
        decision = (
            raw if isinstance(raw, ApprovalDecision) else ApprovalDecision.model_validate(raw)
        )
        record = {
            "action": action,
            "digest": digest,
            "approved": decision.approved,
            "reason": decision.reason,
            "approver": decision.approver,
        }
        self.decisions.append(record)
        log_metadata(ahp_approvals={name: record})
        who = f" by {decision.approver}" if decision.approver else ""
        if not decision.approved:
            logger.info("[approval] %s rejected%s (digest %s)", action, who, digest[:16])
            reason = f": {decision.reason}" if decision.reason else ""
            raise ApprovalRejected(
                f"A person rejected {action} with these arguments{reason}. It was not run; "
                "do not retry it with the same arguments.",
                reason=decision.reason,
            )
        logger.info("[approval] %s approved%s (digest %s)", action, who, digest[:16])
        return decision

    def check_service(self, service_name: str, args: BaseModel) -> None:
        """The services rail's ``before_call`` hook: gate approval-point services."""
        if self.requires(service_name):
            self.check(service_name, args.model_dump(mode="json"))


@dataclass
class ApprovalToolset(WrapperToolset[Any]):
    """Wraps a toolset so tools named as approval points pause for a person first.

    A rejection comes back to the model as a result (``{"ok": false, "error": {"code":
    "rejected", ...}}``); the tool does not run.
    """

    gate: ApprovalGate = field(kw_only=True)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        if self.gate.requires(name):
            try:
                self.gate.check(name, tool_args)
            except ApprovalRejected as exc:
                return {
                    "ok": False,
                    "tool": name,
                    "error": {"code": "rejected", "message": str(exc)},
                }
        return await super().call_tool(name, tool_args, ctx, tool)


@dataclass
class QuestionAsker:
    """Gives each question of a run a wait name that is unique in the run and stable across
    resumes and replays: its ordinal in the run plus a digest of its text."""

    channel: HumanChannel
    count: int = 0

    def __call__(self, question: str) -> str:
        self.count += 1
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        name = f"question_{self.count}_{digest}"
        answer = self.channel.ask(name=name, question=question, schema=str)
        text = str(answer)
        log_metadata(ahp_questions={name: {"question": question[:500], "answer": text[:500]}})
        logger.info("[approval] answered %s (%d chars)", name, len(text))
        return text


def make_ask_question_tool(ask: Callable[[str], str]) -> Tool[Any]:
    """The `ask_question` tool: ask a person and wait durably for the answer."""

    def ask_question(question: str) -> str:
        """Ask a person a question and wait for the answer (the run pauses durably).

        Args:
            question: The exact question for the person, with any options or examples.
        """
        if not question.strip():
            raise ModelRetry("`question` is empty; write the question for the person.")
        return ask(question)

    return Tool(ask_question, name=ASK_QUESTION_TOOL, takes_ctx=False)


def current_user() -> str:
    """Who is answering, for the approval record."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
