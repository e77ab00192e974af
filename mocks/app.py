"""The wiki and webhook mock services, as one FastAPI app.

* ``GET /snippets/{topic}`` (``Authorization: Bearer <wiki token>``): fixture snippets.
* ``POST /webhooks/{webhook_id}`` (``Authorization: Bot <webhook token>``, JSON ``{content}``):
  records a post and returns ``{message_id, posted_at}``. An ``Idempotency-Key`` header makes
  a retry return the first response and record nothing new.
* ``GET /healthz``; ``GET /_records`` (``X-Mock-Admin-Token``) lists the recorded posts.

401 bodies say whether the header was missing, had the wrong scheme or the wrong token, and
never echo anything from the header. Every request prints one line on stdout:
``[mock-services] METHOD path (host=..., auth=<scheme>…) → status``.

This module needs only FastAPI (it is what the mock container image runs).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["SNIPPETS", "WebhookPost", "create_app"]

SNIPPETS: dict[str, list[dict[str, str]]] = {
    "durability": [
        {
            "url": "https://wiki.local/durable-execution/checkpoints",
            "excerpt": (
                "Durable execution records the output of every completed checkpoint. When a "
                "flow crashes between turn 1 and turn 2, the re-run serves turn 1 from its "
                "checkpoint and makes 0 model calls for it; only turn 2 runs again."
            ),
        },
        {
            "url": "https://wiki.local/durable-execution/recovery",
            "excerpt": (
                "Checkpoints are keyed by their code, parameters and inputs, so a changed "
                "prompt or skill invalidates the cache, while a plain retry reuses every step "
                "that already finished."
            ),
        },
    ],
    "sandboxing": [
        {
            "url": "https://wiki.local/sandboxing/isolation",
            "excerpt": (
                "Agent commands run in a sandbox with its own namespaces and no network: the "
                "only way out is the credential proxy, reached through a Unix socket."
            ),
        },
        {
            "url": "https://wiki.local/sandboxing/limits",
            "excerpt": (
                "Each command has a timeout that kills the command but keeps the shell, and "
                "its output is capped at 64 KiB per stream."
            ),
        },
    ],
    "replay": [
        {
            "url": "https://wiki.local/replay/baseline",
            "excerpt": (
                "Replay reproduces a recorded run as a baseline, then re-runs it with exactly "
                "one change (model, prompt or skill) so the difference can be attributed."
            ),
        },
    ],
}
"""Fixture snippets per topic; unknown topics have none."""

AUTH_HEADER = "Authorization"
ADMIN_HEADER = "X-Mock-Admin-Token"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookPost(BaseModel):
    """Body of ``POST /webhooks/{webhook_id}``."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=4000, description="Message text to post.")


def _unauthorized(error: str, detail: str, scheme: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": detail},
        status_code=401,
        headers={"WWW-Authenticate": f'{scheme} realm="mock-services"'},
    )


def _check_auth(request: Request, *, scheme: str, token: str, service: str) -> JSONResponse | None:
    """None when ``Authorization: <scheme> <token>`` is right; else the 401 to send."""
    value = request.headers.get(AUTH_HEADER)
    if not value:
        return _unauthorized(
            "missing_authorization",
            f"missing Authorization header: the {service} expects "
            f"'Authorization: {scheme} <token>'",
            scheme,
        )
    given_scheme, _, given_token = value.partition(" ")
    if given_scheme.lower() != scheme.lower():
        # Not echoing the scheme we got: a header without a space *is* its token.
        return _unauthorized(
            "wrong_scheme",
            f"wrong authorization scheme: the {service} expects '{scheme} <token>'",
            scheme,
        )
    if not hmac.compare_digest(given_token.strip().encode(), token.encode()):
        return _unauthorized("wrong_token", f"wrong token for the {service}", scheme)
    return None


def _log_line(request: Request, status: int) -> str:
    auth = request.headers.get(AUTH_HEADER)
    # The scheme only: even a few characters of a token are more than a log should hold.
    scheme, _, rest = (auth or "").partition(" ")
    shown_auth = (f"{scheme}…" if rest else "…") if auth else "none"
    host = request.headers.get("host", "-")
    fields = (request.method, request.url.path, host, shown_auth)
    method, path, host, shown_auth = (
        "".join(ch if ch.isprintable() else "?" for ch in f) for f in fields
    )
    return f"[mock-services] {method} {path} (host={host}, auth={shown_auth}) → {status}"


def create_app(*, wiki_token: str, webhook_token: str, admin_token: str | None = None) -> FastAPI:
    """Build the mock app. ``admin_token`` enables ``GET /_records`` (disabled when None)."""
    if not wiki_token or not webhook_token:
        raise ValueError("the mock services need a non-empty wiki token and webhook token")

    app = FastAPI(title="agent-harness mock services", docs_url=None, redoc_url=None)
    posts: list[dict[str, Any]] = []
    by_key: dict[str, dict[str, Any]] = {}

    @app.middleware("http")
    async def log_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        print(_log_line(request, response.status_code), flush=True)
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/snippets/{topic}")
    async def snippets(topic: str, request: Request) -> Response:
        if denied := _check_auth(request, scheme="Bearer", token=wiki_token, service="wiki"):
            return denied
        return JSONResponse({"topic": topic, "snippets": SNIPPETS.get(topic.lower(), [])})

    @app.post("/webhooks/{webhook_id}")
    async def webhook(webhook_id: str, request: Request) -> Response:
        if denied := _check_auth(request, scheme="Bot", token=webhook_token, service="webhook"):
            return denied
        try:
            body = WebhookPost.model_validate_json(await request.body())
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)
            ]
            return JSONResponse(
                {"error": "invalid_body", "detail": "expected JSON {content}", "errors": errors},
                status_code=422,
            )
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            if not key or len(key) > 255:
                return JSONResponse(
                    {"error": "invalid_idempotency_key", "detail": "must be 1-255 characters"},
                    status_code=400,
                )
            if (earlier := by_key.get(key)) is not None:
                if earlier["webhook_id"] != webhook_id or earlier["content"] != body.content:
                    return JSONResponse(
                        {
                            "error": "idempotency_key_reused",
                            "detail": "this Idempotency-Key was used for a different post",
                        },
                        status_code=409,
                    )
                return JSONResponse(
                    {"message_id": earlier["message_id"], "posted_at": earlier["posted_at"]}
                )
        record = {
            "webhook_id": webhook_id,
            "content": body.content,
            "message_id": f"msg_{secrets.token_hex(8)}",
            "posted_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "idempotency_key": key,
            "host": request.headers.get("host"),
        }
        posts.append(record)
        if key is not None:
            by_key[key] = record
        return JSONResponse({"message_id": record["message_id"], "posted_at": record["posted_at"]})

    @app.get("/_records")
    async def records(request: Request) -> Response:
        given = request.headers.get(ADMIN_HEADER, "")
        if admin_token is None or not hmac.compare_digest(given.encode(), admin_token.encode()):
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse({"posts": posts})

    return app
