"""Approval points and ask_question, through the real services and mock, with a scripted
person at the HumanChannel seam (the durable kitaru.wait path is tested in test_stage_6)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_harness_platform import Profile, Rails, build_agent
from agent_harness_platform.approval import (
    ApprovalDecision,
    ApprovalGate,
    QuestionAsker,
    args_digest,
)
from agent_harness_platform.services import ServiceContext
from mocks.server import MockServices

WIKI_TOKEN = "wiki-" + secrets.token_hex(8)
WEBHOOK_TOKEN = "hook-" + secrets.token_hex(8)


@dataclass
class ScriptedPerson:
    """A HumanChannel that answers from a list and records every question it was asked."""

    answers: list[Any]
    asked: list[tuple[str, str]] = field(default_factory=list)

    def ask(self, *, name: str, question: str, schema: Any) -> Any:
        self.asked.append((name, question))
        return self.answers.pop(0)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServices]:
    with MockServices(wiki_token=WIKI_TOKEN, webhook_token=WEBHOOK_TOKEN) as running:
        yield running


def _lookup(name: str) -> dict[str, str]:
    return {"wiki-token": {"value": WIKI_TOKEN}, "webhook-token": {"value": WEBHOOK_TOKEN}}[name]


def _profile(**changes: Any) -> Profile:
    fields: dict[str, Any] = {
        "name": "approver",
        "system_prompt": "Publish what you are told.",
        "model": "offline",
        "allowed_tools": {"exec_service"},
        "allowed_services": {"lookup_wiki", "publish_summary"},
        "approval_points": {"publish_summary"},
    }
    fields.update(changes)
    return Profile.model_validate(fields)


def _publisher(contents: list[str], webhook_id: str) -> tuple[FunctionModel, list[Any]]:
    """A model that publishes each content in turn and then reports what came back."""
    results: list[Any] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        for part in messages[-1].parts:
            if isinstance(part, ToolReturnPart):
                results.append(part.content)
        if len(results) < len(contents):
            args = {"webhook_id": webhook_id, "content": contents[len(results)]}
            call = {"service_name": "publish_summary", "args": args}
            return ModelResponse(
                parts=[ToolCallPart("exec_service", call, tool_call_id=f"p{len(results)}")]
            )
        return ModelResponse(parts=[TextPart(json.dumps(results))])

    return FunctionModel(respond), results


def _run(mock: MockServices, person: ScriptedPerson, contents: list[str]) -> tuple[list[Any], str]:
    webhook_id = f"approval-{uuid.uuid4().hex[:8]}"
    profile = _profile()
    gate = ApprovalGate(profile.approval_points, person)
    context = ServiceContext(
        wiki_url=mock.base_url,
        webhook_url=mock.base_url,
        run_key=uuid.uuid4().hex,
        secret_lookup=_lookup,
    )
    rails = Rails(services=context, before_service_call=gate.check_service)
    model, results = _publisher(contents, webhook_id)
    build_agent(profile, model=model, rails=rails, approval=gate).run_sync("publish")
    return results, webhook_id


def _posts(mock: MockServices, webhook_id: str) -> list[dict[str, Any]]:
    return [p for p in mock.records() if p.get("webhook_id") == webhook_id]


def test_approved_call_runs_once_and_the_question_shows_the_exact_arguments(
    mock: MockServices,
) -> None:
    person = ScriptedPerson([ApprovalDecision(approved=True, approver="alice")])
    results, webhook_id = _run(mock, person, ["All good."])
    assert results[0]["ok"] is True
    assert len(_posts(mock, webhook_id)) == 1
    ((name, question),) = person.asked
    assert name.startswith("approve_publish_summary_")
    assert '"content": "All good."' in question and webhook_id in question


def test_rejected_call_posts_nothing_and_the_model_is_told(mock: MockServices) -> None:
    person = ScriptedPerson([ApprovalDecision(approved=False, reason="not today")])
    results, webhook_id = _run(mock, person, ["Ship it."])
    assert _posts(mock, webhook_id) == []
    assert results[0]["ok"] is False
    assert results[0]["error"]["code"] == "rejected"
    assert "not today" in results[0]["error"]["message"]


def test_changed_arguments_need_a_new_approval(mock: MockServices) -> None:
    person = ScriptedPerson([ApprovalDecision(approved=True), ApprovalDecision(approved=True)])
    results, webhook_id = _run(mock, person, ["First version.", "Second version."])
    names = [name for name, _ in person.asked]
    assert len(names) == 2 and names[0] != names[1]
    assert [r["ok"] for r in results] == [True, True]
    assert len(_posts(mock, webhook_id)) == 2


def test_offline_model_reports_a_rejection() -> None:
    """Through the with-hitl skill: the answer says the publish was rejected."""
    from pathlib import Path

    from .conftest import PROJECT_ROOT

    person = ScriptedPerson(
        ["For internal use only", ApprovalDecision(approved=False, reason="wrong channel")]
    )
    profile = _profile(
        allowed_tools={"exec_service", "skill", "ask_question"},
        skill_source={"path": str(PROJECT_ROOT / "skills" / "with-hitl")},
        system_prompt="List your skills, read yours (default-agent), follow it exactly.",
    )
    with MockServices(wiki_token=WIKI_TOKEN, webhook_token=WEBHOOK_TOKEN) as local:
        gate = ApprovalGate(profile.approval_points, person)
        context = ServiceContext(
            wiki_url=local.base_url, webhook_url=local.base_url, run_key="r1", secret_lookup=_lookup
        )
        rails = Rails(
            services=context,
            before_service_call=gate.check_service,
            skill_root=Path(PROJECT_ROOT / "skills" / "with-hitl"),
            ask=QuestionAsker(person),
        )
        result = build_agent(profile, rails=rails, approval=gate).run_sync(
            "Carry out your procedure and return the result."
        )
        assert local.records() == []
    assert "rejected" in result.output and "wrong channel" in result.output
    assert person.asked[0][0].startswith("question_1_")


def test_digest_depends_on_every_argument() -> None:
    base = args_digest("publish_summary", {"webhook_id": "a", "content": "x"})
    assert base == args_digest("publish_summary", {"content": "x", "webhook_id": "a"})
    assert base != args_digest("publish_summary", {"webhook_id": "a", "content": "y"})
    assert base != args_digest("other", {"webhook_id": "a", "content": "x"})


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"approval_points": {"nonexistent"}}, "neither a tool nor an allowed service"),
        (
            {
                "approval_points": {"ask_question"},
                "allowed_tools": {"ask_question", "exec_service"},
            },
            "already waits",
        ),
    ],
)
def test_bad_approval_points_are_rejected(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        _profile(**changes)


def test_waiting_profiles_need_the_calls_strategy() -> None:
    from agent_harness_platform import AgentSession, ConfigurationError

    with pytest.raises(ConfigurationError, match="checkpoint_strategy='calls'"):
        AgentSession(
            _profile(),
            checkpoint_strategy="turn",
            service_urls={"wiki": "http://x", "webhook": "http://x"},
        )


def test_service_urls_must_name_every_service() -> None:
    from agent_harness_platform import AgentSession, ConfigurationError

    profile = _profile(approval_points=set())
    with pytest.raises(ConfigurationError, match=r"lacks \['webhook'\]"):
        AgentSession(profile, service_urls={"wiki": "http://127.0.0.1:1"})
