"""The built-in services: ``lookup_wiki`` and ``publish_summary``, and :func:`default_registry`.

Handlers talk HTTP to the internal services with httpx, contacting the URLs of the
:class:`ServiceContext` directly (proxy environment variables are ignored, so a token never
travels through a proxy nobody configured for it). Every transport problem becomes a
:class:`ServiceCallError` with a code; nothing from a response body reaches the model except
the fields of the result model.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent_harness_platform.services.registry import (
    Service,
    ServiceCallError,
    ServiceContext,
    ServiceRegistry,
    idempotency_key,
)

__all__ = [
    "LOOKUP_WIKI",
    "PUBLISH_SUMMARY",
    "LookupWikiArgs",
    "LookupWikiResult",
    "PublishSummaryArgs",
    "PublishSummaryResult",
    "WikiSnippet",
    "default_registry",
    "lookup_wiki",
    "publish_summary",
]

WIKI_SECRET = "wiki-token"
WEBHOOK_SECRET = "webhook-token"
MAX_SUMMARY_CHARS = 2000

ModelT = TypeVar("ModelT", bound=BaseModel)


class LookupWikiArgs(BaseModel):
    """Arguments of ``lookup_wiki``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(
        min_length=1,
        max_length=200,
        description="The topic to look up in the team wiki, e.g. 'durability'.",
    )

    @field_validator("topic")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the topic must not be blank")
        return value.strip()


class WikiSnippet(BaseModel):
    """One wiki passage about the topic."""

    url: str = Field(description="Link to the wiki page the excerpt comes from.")
    excerpt: str = Field(description="The passage's text.")


class LookupWikiResult(BaseModel):
    """What ``lookup_wiki`` returns."""

    topic: str = Field(description="The topic that was looked up.")
    snippets: list[WikiSnippet] = Field(description="Matching passages, most relevant first.")


class PublishSummaryArgs(BaseModel):
    """Arguments of ``publish_summary``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_id: str = Field(
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description=(
            "The channel's webhook id, e.g. 'team-summaries': 1-64 letters, digits, '.', '_' "
            "or '-'."
        ),
    )
    content: str = Field(
        min_length=1,
        max_length=MAX_SUMMARY_CHARS,
        description=f"The message to post, plain text, 1-{MAX_SUMMARY_CHARS} characters.",
    )

    @field_validator("webhook_id")
    @classmethod
    def _not_only_dots(cls, value: str) -> str:
        if not value.strip("."):
            raise ValueError("the webhook id must contain a letter or digit")
        return value

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the content must not be blank")
        return value


class PublishSummaryResult(BaseModel):
    """What ``publish_summary`` returns."""

    message_id: str = Field(description="Id of the posted message.")
    posted_at: str = Field(description="When the message was posted (ISO 8601).")


def lookup_wiki(args: LookupWikiArgs, context: ServiceContext) -> LookupWikiResult:
    """``GET {wiki_url}/snippets/{topic}`` with the ``wiki-token`` secret as a Bearer token."""
    token = context.secret(WIKI_SECRET)
    data = _call(
        context,
        "GET",
        f"{context.wiki_url.rstrip('/')}/snippets/{_segment(args.topic)}",
        service="lookup_wiki",
        secret_name=WIKI_SECRET,
        headers={"Authorization": f"Bearer {token}"},
    )
    return _parse(LookupWikiResult, data, "lookup_wiki")


def publish_summary(args: PublishSummaryArgs, context: ServiceContext) -> PublishSummaryResult:
    """``POST {webhook_url}/webhooks/{webhook_id}`` with the ``webhook-token`` as a Bot token.

    Idempotent: the ``Idempotency-Key`` header is derived from the run key and the arguments,
    so a retried or replayed call in the same run never posts twice.
    """
    token = context.secret(WEBHOOK_SECRET)
    data = _call(
        context,
        "POST",
        f"{context.webhook_url.rstrip('/')}/webhooks/{_segment(args.webhook_id)}",
        service="publish_summary",
        secret_name=WEBHOOK_SECRET,
        headers={
            "Authorization": f"Bot {token}",
            "Idempotency-Key": idempotency_key(context.run_key, "publish_summary", args),
        },
        json={"content": args.content},
    )
    return _parse(PublishSummaryResult, data, "publish_summary")


def _segment(value: str) -> str:
    """``value`` as one URL path segment; '.' and '..' are encoded so they stay literal."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return quote(value, safe="")


def _call(
    context: ServiceContext,
    method: str,
    url: str,
    *,
    service: str,
    secret_name: str,
    headers: dict[str, str],
    json: Any = None,
) -> Any:
    origin = httpx.URL(url).copy_with(path="/", query=None)
    try:
        with httpx.Client(timeout=context.timeout, trust_env=False) as client:
            response = client.request(method, url, headers=headers, json=json)
    except httpx.TimeoutException as exc:
        raise ServiceCallError(
            f"{service}: no answer from {origin} within {context.timeout:g} s; try again later.",
            code="timeout",
        ) from exc
    except httpx.TransportError as exc:
        raise ServiceCallError(
            f"{service}: the service at {origin} is unreachable ({type(exc).__name__}).",
            code="unreachable",
        ) from exc
    if not response.is_success:
        status = response.status_code
        hint = ""
        if status in (401, 403):
            hint = (
                f"; the credentials from secret {secret_name!r} were refused, an operator must "
                "update the secret"
            )
        raise ServiceCallError(
            f"{service}: HTTP {status} {response.reason_phrase}{hint}.",
            code="http_error",
            status=status,
        )
    try:
        return response.json()
    except ValueError:
        raise ServiceCallError(
            f"{service}: the service answered with something that is not JSON.",
            code="bad_response",
        ) from None


def _parse(model: type[ModelT], data: Any, service: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(map(str, error["loc"])) or "body" for error in exc.errors()})
        raise ServiceCallError(
            f"{service}: the service's answer does not match {model.__name__} "
            f"(problem with: {', '.join(fields)}).",
            code="bad_response",
        ) from None


def _short(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


LOOKUP_WIKI: Service[LookupWikiArgs, LookupWikiResult] = Service(
    name="lookup_wiki",
    summary="Look up short passages about a topic in the team wiki.",
    args_model=LookupWikiArgs,
    result_model=LookupWikiResult,
    handler=lookup_wiki,
    describe_args=lambda args: f"topic={_short(args.topic)}",
    describe_result=lambda result: f"{len(result.snippets)} snippets",
)

PUBLISH_SUMMARY: Service[PublishSummaryArgs, PublishSummaryResult] = Service(
    name="publish_summary",
    summary="Post a short text summary to a team channel through its webhook.",
    args_model=PublishSummaryArgs,
    result_model=PublishSummaryResult,
    handler=publish_summary,
    describe_args=lambda args: f"webhook_id={args.webhook_id!r} ({len(args.content)} chars)",
    describe_result=lambda result: f"message_id={result.message_id}",
)


def default_registry() -> ServiceRegistry:
    """A new registry holding ``lookup_wiki`` and ``publish_summary``; add your own to it."""
    return ServiceRegistry([LOOKUP_WIKI, PUBLISH_SUMMARY])
