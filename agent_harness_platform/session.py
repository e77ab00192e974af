"""A durable agent session: the rails of a Profile, started for one flow run.

:class:`AgentSession` is what a flow body uses. It starts what the profile needs (sandbox,
credential proxy, skill tree, service context), builds the PydanticAI agent, wraps it with
Kitaru's ``KitaruAgent`` and runs turns whose cache key covers the profile, the model and the
skill files, so editing any of them never serves a stale turn.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model

from ._kitaru import log_metadata
from .agent import Rails, build_agent
from .models import CountingModel, resolve_model
from .profile import Profile
from .sandbox.base import SandboxConfig

__all__ = ["AgentSession", "CheckpointStrategy", "sandbox_config_for"]

logger = logging.getLogger("agent_harness_platform")

CheckpointStrategy = Literal["turn", "calls"]

MODEL_CALL_LOG_ENV = "AHP_MODEL_CALL_LOG"
"""If set, every model request appends a line to this file (how tests count calls)."""


def sandbox_config_for(profile: Profile) -> SandboxConfig:
    """The sandbox policy a profile implies. The one place the profile becomes sandbox policy."""
    settings = profile.sandbox
    return SandboxConfig(
        backend=settings.backend,
        memory_mb=settings.memory_mb,
        pids_max=settings.pids_max,
        cpu_quota=settings.cpu_quota,
        tmp_size_mb=settings.tmp_size_mb,
        default_timeout=settings.command_timeout,
        max_output_bytes=settings.max_output_bytes,
    )


class AgentSession:
    """Start a profile's rails, run durable turns, stop everything on exit.

    Use inside a ``@kitaru.flow`` body::

        with AgentSession(profile, model="offline") as session:
            first = session.turn("...")
            second = session.turn("...", history=first.all_messages())

    ``checkpoint_strategy="turn"`` makes each turn one checkpoint (``<name>``,
    ``<name>_2``, ...). ``allow_host`` lets a profile use the unisolated host backend (stage 1).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        model: Model | str | None = None,
        checkpoint_strategy: CheckpointStrategy = "turn",
        allow_host: bool = False,
        rails: Rails | None = None,
    ) -> None:
        self.profile = profile
        self._model_arg = model
        self._strategy = checkpoint_strategy
        self._allow_host = allow_host
        self._extra_rails = rails or Rails()
        self._stack: ExitStack | None = None
        self.model: CountingModel | None = None
        self.durable: Any = None
        self.agent: Any = None
        self.cache_metadata: dict[str, str] = {}
        self.skill_files_read: list[str] = []
        self.skill_root: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the rails and build the durable agent."""
        if self._stack is not None:
            return
        stack = ExitStack()
        try:
            rails, skills_hash = self._start_rails(stack)
            inner = self._resolve_model()
            self.model = CountingModel(inner, log_path=os.environ.get(MODEL_CALL_LOG_ENV) or None)
            self.agent = build_agent(self.profile, model=self.model, rails=rails)
            from kitaru.adapters.pydantic_ai import KitaruAgent

            self.durable = KitaruAgent(self.agent, checkpoint_strategy=self._strategy)
            self.cache_metadata = {
                "ahp_profile": self.profile.fingerprint(),
                "ahp_model": inner.model_name,
                "ahp_skills": skills_hash,
            }
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        log_metadata(
            ahp_profile={
                "name": self.profile.name,
                "fingerprint": self.cache_metadata["ahp_profile"],
            },
            ahp_model=inner.model_name,
        )

    def close(self) -> None:
        """Stop every rail this session started. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _resolve_model(self) -> Model:
        arg = self._model_arg
        if isinstance(arg, Model):
            return arg
        return resolve_model(arg or self.profile.model)

    def _start_rails(self, stack: ExitStack) -> tuple[Rails, str]:
        profile = self.profile
        rails = self._extra_rails
        skills_hash = ""
        if profile.skill_source is not None:
            from .skills import skill_tree_hash, validate_skill_tree

            root = profile.skill_source.resolve()
            validate_skill_tree(root)
            skills_hash = skill_tree_hash(root)
            self.skill_root = root
            if rails.skill_root is None:
                rails = replace(rails, skill_root=root, on_skill_read=self._record_skill_read)
        if "exec" in profile.allowed_tools and rails.sandbox is None:
            from .sandbox import open_sandbox

            sandbox = open_sandbox(sandbox_config_for(profile), allow_host=self._allow_host)
            stack.enter_context(sandbox)
            rails = replace(rails, sandbox=sandbox)
        return rails, skills_hash

    def _record_skill_read(self, relative_path: str) -> None:
        self.skill_files_read.append(relative_path)
        log_metadata(
            ahp_skills={
                "tree_hash": self.cache_metadata.get("ahp_skills", ""),
                "files_read": sorted(set(self.skill_files_read)),
            }
        )

    # -- turns -------------------------------------------------------------------------------

    def turn(
        self, prompt: str, *, history: list[ModelMessage] | None = None
    ) -> AgentRunResult[str]:
        """Run one durable turn. Under the turn strategy it is one checkpoint, served from the
        cache when the prompt, history, profile, model and skill files are unchanged."""
        if self.durable is None:
            raise RuntimeError(
                "AgentSession.turn() called before start(); use `with AgentSession(...)`"
            )
        result: AgentRunResult[str] = self.durable.run_sync(
            prompt, message_history=history, metadata=dict(self.cache_metadata)
        )
        return result
