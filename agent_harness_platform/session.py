"""A durable agent session: the rails of a Profile, started for one flow run.

:class:`AgentSession` is what a flow body uses. It starts what the profile needs (sandbox,
credential proxy, skill tree, service context), builds the PydanticAI agent, wraps it with
Kitaru's ``KitaruAgent`` and runs turns whose cache key covers the profile, the model and the
skill files, so editing any of them never serves a stale turn.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models import Model

from ._kitaru import log_metadata
from .agent import Rails, build_agent
from .approval import ApprovalGate, HumanChannel, KitaruWaitChannel, QuestionAsker
from .errors import ConfigurationError
from .models import CountingModel, resolve_model
from .profile import TOOL_NAMES, Profile
from .sandbox.base import Sandbox, SandboxConfig

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


def last_exec_cwd(messages: list[ModelMessage]) -> str | None:
    """The working directory the last `exec` call in ``messages`` reported."""
    cwd = None
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart) and part.tool_name == "exec":
                    content = part.content
                    if isinstance(content, dict) and isinstance(content.get("cwd"), str):
                        cwd = content["cwd"]
    return cwd


def _run_key() -> str:
    """The idempotency scope of side effects: the Kitaru execution (stable across resume)."""
    from kitaru.runtime import current_execution_id

    return current_execution_id() or f"local-{uuid.uuid4().hex}"


class AgentSession:
    """Start a profile's rails, run durable turns, stop everything on exit.

    Use inside a ``@kitaru.flow`` body::

        with AgentSession(profile, model="offline") as session:
            first = session.turn("...")
            second = session.turn("...", history=first.all_messages())

    The default ``checkpoint_strategy="calls"`` makes every model request and tool call its
    own checkpoint (``<name>_model_request``, ``<tool>_tool``, ...), configured so a re-run
    after a crash is served from the cache, and it is the one that allows waiting for a
    person. ``"turn"`` makes each turn one checkpoint (``<name>``, ``<name>_2``, ...), as the
    stage 1-5 demos show. ``allow_host`` lets a profile use the unisolated host backend
    (stage 1).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        model: Model | str | None = None,
        checkpoint_strategy: CheckpointStrategy = "calls",
        allow_host: bool = False,
        rails: Rails | None = None,
        proxy_upstreams: Mapping[str, str] | None = None,
        service_urls: Mapping[str, str] | None = None,
        channel: HumanChannel | None = None,
    ) -> None:
        if profile.needs_a_person() and checkpoint_strategy == "turn":
            raise ConfigurationError(
                f"profile {profile.name!r} can wait for a person (ask_question or approval "
                "points), and a wait cannot happen inside a turn checkpoint; use "
                "AgentSession(..., checkpoint_strategy='calls')"
            )
        if (
            "exec_service" in profile.allowed_tools
            and not service_urls
            and (rails is None or rails.services is None)
        ):
            raise ConfigurationError(
                f"profile {profile.name!r} allows exec_service; pass service_urls="
                "{'wiki': ..., 'webhook': ...} (the base URLs of the internal services)"
            )
        missing = {"wiki", "webhook"} - set(service_urls or {})
        if service_urls and missing:
            raise ConfigurationError(
                f"service_urls lacks {sorted(missing)}; give the base URL of each internal "
                "service, e.g. {'wiki': 'http://127.0.0.1:8080', 'webhook': '...'}"
            )
        self.profile = profile
        self._proxy_upstreams = dict(proxy_upstreams or {})
        self._service_urls = dict(service_urls or {})
        self._channel = channel
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
        self.approvals: ApprovalGate | None = None
        self.sandbox: Sandbox | None = None
        """The live sandbox `exec` runs in (None when the profile has no `exec`)."""
        self._turns = 0

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
            gate = None
            if self.profile.approval_points:
                gate = ApprovalGate(self.profile.approval_points, self._human())
                rails = replace(rails, before_service_call=gate.check_service)
            self.approvals = gate
            self.agent = build_agent(self.profile, model=self.model, rails=rails, approval=gate)
            self.durable = self._wrap(self.agent)
            self.cache_metadata = {
                "ahp_profile": self.profile.fingerprint(),
                "ahp_model": inner.model_name
                + (f"@{version}" if (version := getattr(inner, "behaviour_version", "")) else ""),
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
            ahp_runner_pid=os.getpid(),
        )

    def close(self) -> None:
        """Stop every rail this session started. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _human(self) -> HumanChannel:
        if self._channel is None:
            self._channel = KitaruWaitChannel()
        return self._channel

    def _wrap(self, agent: Any) -> Any:
        from kitaru.adapters.pydantic_ai import CapturePolicy, KitaruAgent

        if self._strategy == "turn":
            return KitaruAgent(agent, checkpoint_strategy="turn")
        # Calls strategy: each model request and tool call is its own checkpoint. Tools that
        # wait for a person must run at flow scope, so they opt out of their checkpoint and
        # run on the workflow thread. Prompts are not saved as artifacts, and the
        # conversation id is fixed per turn, so a re-run after a crash hits the cache.
        waits = {p for p in self.profile.approval_points if p in TOOL_NAMES}
        if "ask_question" in self.profile.allowed_tools:
            waits.add("ask_question")
        if self.profile.approval_points & self.profile.allowed_services:
            waits.add("exec_service")
        return KitaruAgent(
            agent,
            checkpoint_strategy="calls",
            capture=CapturePolicy(save_prompts=False),
            tool_checkpoint_config_by_name=dict.fromkeys(sorted(waits), False),
            allow_sync_tool_body_waits=bool(waits),
        )

    def _resolve_model(self) -> Model:
        arg = self._model_arg
        if isinstance(arg, Model):
            return arg
        return resolve_model(arg or self.profile.model)

    def _start_rails(self, stack: ExitStack) -> tuple[Rails, str]:
        profile = self.profile
        rails = self._extra_rails
        skills_hash = ""
        proxy_endpoint = None
        if profile.proxy_rules or profile.allowed_hosts:
            from .proxy import CredentialProxy

            proxy = CredentialProxy(
                profile.proxy_rules,
                allowed_hosts=profile.allowed_hosts,
                upstream_overrides=self._proxy_upstreams,
            )
            stack.enter_context(proxy)
            proxy_endpoint = proxy.endpoint
        if "exec_service" in profile.allowed_tools and rails.services is None:
            from .services import ServiceContext

            rails = replace(
                rails,
                services=ServiceContext(
                    wiki_url=self._service_urls["wiki"],
                    webhook_url=self._service_urls["webhook"],
                    run_key=_run_key(),
                ),
            )
        if "ask_question" in profile.allowed_tools and rails.ask is None:
            rails = replace(rails, ask=QuestionAsker(self._human()))
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

            config = replace(sandbox_config_for(profile), proxy=proxy_endpoint)
            sandbox = open_sandbox(config, allow_host=self._allow_host)
            stack.enter_context(sandbox)
            rails = replace(rails, sandbox=sandbox)
        self.sandbox = rails.sandbox
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
        self._turns += 1
        extra: dict[str, Any] = {}
        if self._strategy == "calls":
            # A stable conversation id per turn keeps the calls' cache keys equal across runs.
            seed = f"{self.cache_metadata}|{self._turns}|{prompt}"
            extra["conversation_id"] = "ahp-" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        paid_before = self.model.calls if self.model is not None else 0
        result: AgentRunResult[str] = self.durable.run_sync(
            prompt, message_history=history, metadata=dict(self.cache_metadata), **extra
        )
        if self.model is not None and self.model.calls == paid_before:
            self._restore_shell_state(result.new_messages())
        return result

    def _restore_shell_state(self, messages: list[ModelMessage]) -> None:
        """A turn served from the cache ran no command in this run's (new) sandbox, so the
        working directory it left is replayed: the next turn starts where it expects."""
        if self.sandbox is None:
            return
        cwd = last_exec_cwd(messages)
        if not cwd:
            return
        logger.info("[sandbox] restoring the working directory %s left by the cached turn", cwd)
        result = self.sandbox.run(f"cd -- {shlex.quote(cwd)}", timeout=10)
        if result.exit_code != 0:
            logger.warning("[sandbox] could not restore the working directory %s", cwd)
