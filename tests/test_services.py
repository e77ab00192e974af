"""The typed services rail: registry, ``exec_service`` and the handlers against the real mock.

The mock wiki/webhook server runs as a uvicorn child process on loopback (``mocks.server``).
The tool is driven through a ``pydantic_ai.Agent`` with a ``FunctionModel`` issuing one call,
so a ``ModelRetry`` is observed as the retry prompt the model receives.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from agent_harness_platform.errors import ConfigurationError
from agent_harness_platform.services import (
    LookupWikiResult,
    PublishSummaryArgs,
    PublishSummaryResult,
    Service,
    ServiceContext,
    check_services,
    default_registry,
    idempotency_key,
    kitaru_secret_lookup,
    make_exec_service_tool,
)
from mocks.server import MockServices

from .fakes import call_tool, seen_tool_definition

WIKI_TOKEN = "wiki-" + secrets.token_hex(8)
WEBHOOK_TOKEN = "hook-" + secrets.token_hex(8)
ALL = ("lookup_wiki", "publish_summary")
LOG_LINE = re.compile(r"^\[services\] .+ → .+ in \d+ ms$")


def lookup(values: dict[str, dict[str, str]]) -> Any:
    def secret_lookup(name: str) -> dict[str, str]:
        return values[name]  # KeyError when missing, as a real store would fail

    return secret_lookup


GOOD_SECRETS = {"wiki-token": {"value": WIKI_TOKEN}, "webhook-token": {"value": WEBHOOK_TOKEN}}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServices]:
    with MockServices(wiki_token=WIKI_TOKEN, webhook_token=WEBHOOK_TOKEN) as server:
        yield server


def context_for(url: str, **overrides: Any) -> ServiceContext:
    fields: dict[str, Any] = {
        "wiki_url": url,
        "webhook_url": url,
        "run_key": "run-" + uuid.uuid4().hex,
        "secret_lookup": lookup(GOOD_SECRETS),
        "timeout": 5.0,
    }
    fields.update(overrides)
    return ServiceContext(**fields)


@pytest.fixture
def context(mock: MockServices) -> ServiceContext:
    return context_for(mock.base_url)


@pytest.fixture
def webhook_id() -> str:
    """A fresh channel per test, so the module-wide mock's records do not mix."""
    return f"team-{uuid.uuid4().hex[:12]}"


def posts_to(mock: MockServices, webhook_id: str) -> list[dict[str, Any]]:
    return [post for post in mock.records() if post["webhook_id"] == webhook_id]


@pytest.fixture
def service_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="agent_harness_platform.services")
    return caplog


def service_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent_harness_platform.services"]


# --- happy paths against the mock -------------------------------------------------------------


def test_lookup_wiki_returns_typed_snippets(
    context: ServiceContext, service_logs: pytest.LogCaptureFixture
) -> None:
    tool = make_exec_service_tool(default_registry(), ALL, context)
    result = call_tool(tool, service_name="lookup_wiki", args={"topic": "durability"}).returned
    assert result["ok"] is True and result["service"] == "lookup_wiki"
    typed = LookupWikiResult.model_validate(result["result"])
    assert typed.topic == "durability"
    assert len(typed.snippets) == 2
    assert typed.snippets[0].url.startswith("https://wiki.local/")
    lines = service_lines(service_logs)
    assert len(lines) == 1 and LOG_LINE.match(lines[0])
    assert lines[0].startswith("[services] lookup_wiki topic='durability' → 2 snippets in ")
    assert WIKI_TOKEN not in service_logs.text


def test_publish_posts_once_with_the_bot_token(
    mock: MockServices,
    context: ServiceContext,
    webhook_id: str,
    service_logs: pytest.LogCaptureFixture,
) -> None:
    tool = make_exec_service_tool(default_registry(), ALL, context)
    args = {"webhook_id": webhook_id, "content": "Durability: turn 1 was served from cache."}
    result = call_tool(tool, service_name="publish_summary", args=args).returned
    assert result["ok"] is True
    typed = PublishSummaryResult.model_validate(result["result"])
    [post] = posts_to(mock, webhook_id)
    assert post["content"] == args["content"]
    assert post["message_id"] == typed.message_id
    assert post["idempotency_key"] == idempotency_key(
        context.run_key, "publish_summary", PublishSummaryArgs.model_validate(args)
    )
    # The mock only accepts 'Bot <webhook token>'; its request log shows the scheme.
    assert any(
        f"POST /webhooks/{webhook_id}" in line and "auth=Bot…" in line and "→ 200" in line
        for line in mock.log_lines()
    )
    [line] = service_lines(service_logs)
    assert line.startswith(
        f"[services] publish_summary webhook_id='{webhook_id}' ({len(args['content'])} chars) "
        f"→ message_id={typed.message_id} in "
    )
    assert WEBHOOK_TOKEN not in service_logs.text


def test_the_same_publish_twice_posts_once(
    mock: MockServices, context: ServiceContext, webhook_id: str
) -> None:
    tool = make_exec_service_tool(default_registry(), ALL, context)
    args = {"webhook_id": webhook_id, "content": "once"}
    first = call_tool(tool, service_name="publish_summary", args=args).returned
    # A replayed run rebuilds the tool with the same run key.
    again = make_exec_service_tool(default_registry(), ALL, context)
    second = call_tool(again, service_name="publish_summary", args=args).returned
    assert first == second
    assert len(posts_to(mock, webhook_id)) == 1
    # A different run is a different post.
    other_run = context_for(mock.base_url)
    other = make_exec_service_tool(default_registry(), ALL, other_run)
    call_tool(other, service_name="publish_summary", args=args)
    assert len(posts_to(mock, webhook_id)) == 2


# --- refusals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadArgs:
    id: str
    service: str
    args: dict[str, Any]
    field: str


LONG = "x" * 2001
MISSING = object()


def pub(case_id: str, field: str, **changes: Any) -> BadArgs:
    """A publish_summary case: good args with ``changes`` (MISSING drops a field)."""
    args = {"webhook_id": "team", "content": "hi"} | changes
    kept = {key: value for key, value in args.items() if value is not MISSING}
    return BadArgs(case_id, "publish_summary", kept, field)


BAD_ARGS = [
    BadArgs("topic-not-string", "lookup_wiki", {"topic": 123}, "topic"),
    BadArgs("topic-missing", "lookup_wiki", {}, "topic"),
    BadArgs("topic-blank", "lookup_wiki", {"topic": "   "}, "topic"),
    BadArgs("topic-extra", "lookup_wiki", {"topic": "x", "limit": 3}, "limit"),
    pub("content-not-string", "content", content=5),
    pub("webhook-id-not-string", "webhook_id", webhook_id=["a"]),
    pub("webhook-id-space", "webhook_id", webhook_id="a b"),
    pub("webhook-id-slash", "webhook_id", webhook_id="../x"),
    pub("webhook-id-empty", "webhook_id", webhook_id=""),
    pub("webhook-id-long", "webhook_id", webhook_id="a" * 65),
    pub("webhook-id-dots", "webhook_id", webhook_id=".."),
    pub("webhook-id-missing", "webhook_id", webhook_id=MISSING),
    pub("content-missing", "content", content=MISSING),
    pub("content-oversized", "content", content=LONG),
    pub("content-empty", "content", content=""),
    pub("content-blank", "content", content=" \n "),
    pub("extra-field", "to", to="all"),
]


@pytest.mark.parametrize("case", BAD_ARGS, ids=lambda c: c.id)
def test_bad_args_are_a_model_retry_and_post_nothing(mock: MockServices, case: BadArgs) -> None:
    asked: list[str] = []

    def secret_lookup(name: str) -> dict[str, str]:
        asked.append(name)
        return GOOD_SECRETS[name]

    before = len(mock.records())
    tool = make_exec_service_tool(
        default_registry(), ALL, context_for(mock.base_url, secret_lookup=secret_lookup)
    )
    outcome = call_tool(tool, service_name=case.service, args=case.args)
    assert outcome.returned is None
    assert outcome.retry is not None
    assert f"Invalid args for service {case.service!r}" in outcome.retry
    assert re.search(rf"^- {case.field}: ", outcome.retry, re.M), outcome.retry
    assert LONG not in outcome.retry  # values are not echoed back
    assert asked == []  # refused before any credential was touched
    assert len(mock.records()) == before


@pytest.mark.parametrize("name", ["publish_summary", "nope", ""])
def test_a_service_not_allowed_is_refused(mock: MockServices, name: str) -> None:
    before = len(mock.records())
    tool = make_exec_service_tool(default_registry(), ["lookup_wiki"], context_for(mock.base_url))
    outcome = call_tool(tool, service_name=name, args={"webhook_id": "W", "content": "hi"})
    assert outcome.returned is None
    assert outcome.retry is not None
    assert "Allowed services: lookup_wiki." in outcome.retry
    assert len(mock.records()) == before


def test_no_allowed_services_means_none(mock: MockServices) -> None:
    tool = make_exec_service_tool(default_registry(), [], context_for(mock.base_url))
    description, _ = seen_tool_definition(tool)
    assert "No services are available" in description
    outcome = call_tool(tool, service_name="lookup_wiki", args={"topic": "durability"})
    assert outcome.retry is not None and "Allowed services: (none)" in outcome.retry


# --- failures become typed results --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mock_down_is_unreachable_quickly(service_logs: pytest.LogCaptureFixture) -> None:
    context = context_for(f"http://127.0.0.1:{closed_port()}")
    tool = make_exec_service_tool(default_registry(), ALL, context)
    started = time.monotonic()
    result = call_tool(
        tool, service_name="publish_summary", args={"webhook_id": "W", "content": "hi"}
    ).returned
    assert time.monotonic() - started < 3
    assert result["ok"] is False and result["service"] == "publish_summary"
    assert result["error"]["code"] == "unreachable"
    assert result["error"]["status"] is None
    [line] = service_lines(service_logs)
    assert re.search(r"→ error unreachable in \d+ ms$", line)


def test_silent_service_is_a_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        tool = make_exec_service_tool(default_registry(), ALL, context_for(url, timeout=0.3))
        result = call_tool(tool, service_name="lookup_wiki", args={"topic": "x"}).returned
    assert result["ok"] is False
    assert result["error"]["code"] == "timeout"


def test_wrong_token_is_http_error_401(
    mock: MockServices, webhook_id: str, service_logs: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    bad_secrets = {"wiki-token": {"value": wrong}, "webhook-token": {"value": wrong}}
    context = context_for(mock.base_url, secret_lookup=lookup(bad_secrets))
    tool = make_exec_service_tool(default_registry(), ALL, context)
    for name, args in (
        ("lookup_wiki", {"topic": "durability"}),
        ("publish_summary", {"webhook_id": webhook_id, "content": "hi"}),
    ):
        result = call_tool(tool, service_name=name, args=args).returned
        assert result["ok"] is False
        error = result["error"]
        assert (error["code"], error["status"]) == ("http_error", 401)
        assert "-token" in error["message"] and wrong not in error["message"]
    assert posts_to(mock, webhook_id) == []
    lines = service_lines(service_logs)
    assert all(re.search(r"→ error http_error 401 in \d+ ms$", line) for line in lines), lines
    assert wrong not in service_logs.text


def test_other_http_status_is_http_error(mock: MockServices) -> None:
    context = context_for(mock.base_url + "/no-such-prefix")
    tool = make_exec_service_tool(default_registry(), ALL, context)
    result = call_tool(tool, service_name="lookup_wiki", args={"topic": "durability"}).returned
    assert result["error"]["code"] == "http_error"
    assert result["error"]["status"] == 404


@pytest.mark.parametrize("values", [{}, {"wiki-token": {}}, {"wiki-token": {"value": ""}}])
def test_missing_secret_is_a_typed_error(mock: MockServices, values: dict[str, Any]) -> None:
    context = context_for(mock.base_url, secret_lookup=lookup(values))
    tool = make_exec_service_tool(default_registry(), ALL, context)
    result = call_tool(tool, service_name="lookup_wiki", args={"topic": "durability"}).returned
    assert result["ok"] is False
    assert result["error"]["code"] == "missing_secret"
    assert "'wiki-token'" in result["error"]["message"]


# --- the tool's contract ------------------------------------------------------------------------


def test_description_lists_only_allowed_services(mock: MockServices) -> None:
    tool = make_exec_service_tool(default_registry(), ["lookup_wiki"], context_for(mock.base_url))
    assert tool.name == "exec_service"
    description, parameters = seen_tool_definition(tool)
    assert "- lookup_wiki: Look up" in description
    assert "topic (string, required" in description
    assert "publish_summary" not in description and "webhook_id" not in description
    assert set(parameters["properties"]) == {"service_name", "args"}

    both, _ = seen_tool_definition(
        make_exec_service_tool(default_registry(), ALL, context_for(mock.base_url))
    )
    assert "webhook_id (string, required, pattern ^[A-Za-z0-9._-]{1,64}$)" in both
    assert "content (string, required, 1-2000 chars)" in both


def test_unknown_service_in_a_profile_is_a_configuration_error(mock: MockServices) -> None:
    registry = default_registry()
    check_services(registry, ["lookup_wiki"])
    with pytest.raises(ConfigurationError, match="lookup_wiki, publish_summary") as info:
        check_services(registry, ["lookup_wiki", "send_email"])
    assert "'send_email'" in str(info.value)
    with pytest.raises(ConfigurationError, match="send_email"):
        make_exec_service_tool(registry, ["send_email"], context_for(mock.base_url))


def test_before_call_sees_validated_args_and_can_stop_the_call(
    mock: MockServices, webhook_id: str
) -> None:
    seen: list[tuple[str, BaseModel]] = []

    class Rejected(Exception):
        pass

    def gate(name: str, args: BaseModel) -> None:
        seen.append((name, args))
        raise Rejected("no")

    tool = make_exec_service_tool(
        default_registry(), ALL, context_for(mock.base_url), before_call=gate
    )
    with pytest.raises(Rejected):
        call_tool(
            tool, service_name="publish_summary", args={"webhook_id": webhook_id, "content": "hi"}
        )
    assert seen == [("publish_summary", PublishSummaryArgs(webhook_id=webhook_id, content="hi"))]
    assert posts_to(mock, webhook_id) == []


# --- extending the registry ---------------------------------------------------------------------


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(description="Text to echo back.")
    times: int = Field(default=1, ge=1, le=3, description="How often.")


class EchoResult(BaseModel):
    echoed: str


def echo(args: EchoArgs, context: ServiceContext) -> EchoResult:
    return EchoResult(echoed=args.text * args.times)


ECHO = Service(
    name="echo",
    summary="Repeat a text.",
    args_model=EchoArgs,
    result_model=EchoResult,
    handler=echo,
)


def test_a_team_registers_its_own_service(service_logs: pytest.LogCaptureFixture) -> None:
    registry = default_registry()
    registry.register(ECHO)
    assert registry.names() == ["echo", "lookup_wiki", "publish_summary"]
    assert "echo" not in default_registry()  # each call builds a fresh registry
    context = context_for("http://127.0.0.1:9")
    tool = make_exec_service_tool(registry, ["echo"], context)
    description, _ = seen_tool_definition(tool)
    assert "- echo: Repeat a text." in description
    assert "times (integer, default 1, >= 1, <= 3): How often." in description
    result = call_tool(tool, service_name="echo", args={"text": "ab", "times": 2}).returned
    assert result == {"ok": True, "service": "echo", "result": {"echoed": "abab"}}
    [line] = service_lines(service_logs)
    assert re.match(r"^\[services\] echo → ok in \d+ ms$", line)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(ECHO)


class Loose(BaseModel):
    text: str = Field(description="Text.")


class Undescribed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "lowercase"),
        ({"summary": ""}, "one non-empty line"),
        ({"summary": "two\nlines"}, "one non-empty line"),
        ({"args_model": Loose}, "extra='forbid'"),
        ({"args_model": Undescribed}, "missing for text"),
    ],
)
def test_service_contract_is_checked(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "name": "echo",
        "summary": "Repeat a text.",
        "args_model": EchoArgs,
        "result_model": EchoResult,
        "handler": echo,
    }
    fields.update(kwargs)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Service(**fields)


# --- context and keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"wiki_url": "wiki.local"}, {"webhook_url": ""}, {"run_key": ""}, {"timeout": 0}],
)
def test_context_is_checked(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        context_for("http://127.0.0.1:1", **overrides)


def test_context_defaults() -> None:
    context = ServiceContext(wiki_url="http://a", webhook_url="http://a", run_key="r")
    assert context.secret_lookup is kitaru_secret_lookup
    assert context.timeout == 10.0


def test_kitaru_secret_lookup_reads_the_store() -> None:
    import kitaru

    name = f"ahp-test-{uuid.uuid4().hex[:8]}"
    kitaru.create_secret(name, {"value": "s3cr3t"})
    try:
        assert kitaru_secret_lookup(name) == {"value": "s3cr3t"}
        context = ServiceContext(wiki_url="http://a", webhook_url="http://a", run_key="r")
        assert context.secret(name) == "s3cr3t"
    finally:
        kitaru.delete_secret(name)


def test_idempotency_key_covers_run_service_and_args() -> None:
    args = PublishSummaryArgs(webhook_id="w", content="hi")
    key = idempotency_key("run-1", "publish_summary", args)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == idempotency_key("run-1", "publish_summary", args.model_copy())
    assert key != idempotency_key("run-2", "publish_summary", args)
    assert key != idempotency_key("run-1", "other", args)
    assert key != idempotency_key(
        "run-1", "publish_summary", args.model_copy(update={"content": "ho"})
    )
