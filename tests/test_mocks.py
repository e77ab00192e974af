"""The mock services, through a real uvicorn child process on loopback."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from agent_harness_platform.errors import ConfigurationError
from mocks import MockServices, create_app, read_mock_tokens

WIKI_TOKEN = "wiki-tok-7d1e9a2c4b"
WEBHOOK_TOKEN = "hook-tok-3f8b0c6d5e"
LOG_LINE = re.compile(
    r"^\[mock-services\] (?P<method>[A-Z]+) (?P<path>\S+) "
    r"\(host=(?P<host>\S+), auth=(?P<auth>.*)\) → (?P<status>\d{3})$"
)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServices]:
    with MockServices(wiki_token=WIKI_TOKEN, webhook_token=WEBHOOK_TOKEN) as services:
        yield services


@pytest.fixture
def client(mock: MockServices) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.base_url, timeout=5) as c:
        yield c


def wait_for_line(mock: MockServices, predicate: object, timeout: float = 5.0) -> str:
    """The child prints asynchronously: poll its forwarded output for a matching line."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in mock.log_lines():
            if predicate(line):
                return line
        time.sleep(0.02)
    raise AssertionError(f"no matching line in {mock.log_lines()[-10:]}")


def test_healthz_and_lifecycle(mock: MockServices) -> None:
    assert mock.is_alive()
    assert mock.base_url == f"http://127.0.0.1:{mock.port}"
    assert httpx.get(f"{mock.base_url}/healthz").json() == {"status": "ok"}


def test_snippets_durability_has_two_citable_snippets(client: httpx.Client) -> None:
    response = client.get("/snippets/durability", headers={"Authorization": f"Bearer {WIKI_TOKEN}"})
    assert response.status_code == 200
    body = response.json()
    assert body["topic"] == "durability"
    assert len(body["snippets"]) == 2
    first = body["snippets"][0]
    assert first["url"].startswith("https://wiki.local/")
    assert "checkpoint" in first["excerpt"] and "0 model calls" in first["excerpt"]


@pytest.mark.parametrize("topic", ["sandboxing", "replay"])
def test_snippets_other_fixtures(client: httpx.Client, topic: str) -> None:
    body = client.get(
        f"/snippets/{topic}", headers={"Authorization": f"Bearer {WIKI_TOKEN}"}
    ).json()
    assert body["topic"] == topic
    assert body["snippets"] and all({"url", "excerpt"} == set(s) for s in body["snippets"])


def test_snippets_unknown_topic_is_empty(client: httpx.Client) -> None:
    response = client.get("/snippets/quantum", headers={"Authorization": f"Bearer {WIKI_TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"topic": "quantum", "snippets": []}


@dataclass(frozen=True)
class AuthCase:
    name: str
    method: str
    path: str
    header: str | None
    error: str


AUTH_CASES = [
    AuthCase("wiki-missing", "GET", "/snippets/durability", None, "missing_authorization"),
    AuthCase("wiki-scheme", "GET", "/snippets/durability", f"Bot {WIKI_TOKEN}", "wrong_scheme"),
    AuthCase("wiki-bare-token", "GET", "/snippets/durability", WIKI_TOKEN, "wrong_scheme"),
    AuthCase("wiki-token", "GET", "/snippets/durability", "Bearer not-the-token", "wrong_token"),
    AuthCase("wiki-scheme-only", "GET", "/snippets/durability", "Bearer", "wrong_token"),
    AuthCase("hook-missing", "POST", "/webhooks/team", None, "missing_authorization"),
    AuthCase("hook-scheme", "POST", "/webhooks/team", f"Bearer {WEBHOOK_TOKEN}", "wrong_scheme"),
    AuthCase("hook-token", "POST", "/webhooks/team", "Bot not-the-token", "wrong_token"),
    AuthCase("hook-cross", "POST", "/webhooks/team", f"Bot {WIKI_TOKEN}", "wrong_token"),
]


@pytest.mark.parametrize("case", AUTH_CASES, ids=lambda c: c.name)
def test_401_variants_are_distinct_and_never_echo(
    client: httpx.Client, mock: MockServices, case: AuthCase
) -> None:
    headers = {"Authorization": case.header} if case.header is not None else {}
    kwargs: dict[str, Any] = {"json": {"content": "hello"}} if case.method == "POST" else {}
    before = len(mock.records())
    response = client.request(case.method, case.path, headers=headers, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"] == case.error
    assert "WWW-Authenticate" in response.headers
    for secret in (WIKI_TOKEN, WEBHOOK_TOKEN, "not-the-token"):
        assert secret not in response.text
    assert len(mock.records()) == before


def test_webhook_post_records_and_returns_ids(client: httpx.Client, mock: MockServices) -> None:
    response = client.post(
        "/webhooks/release-notes",
        headers={"Authorization": f"Bot {WEBHOOK_TOKEN}"},
        json={"content": "Durable execution summary"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"message_id", "posted_at"}
    assert body["message_id"].startswith("msg_")
    record = next(r for r in mock.records() if r["message_id"] == body["message_id"])
    assert record["webhook_id"] == "release-notes"
    assert record["content"] == "Durable execution summary"
    assert record["posted_at"] == body["posted_at"]


def test_webhook_idempotency_key_returns_same_response_and_records_once(
    client: httpx.Client, mock: MockServices
) -> None:
    headers = {"Authorization": f"Bot {WEBHOOK_TOKEN}", "Idempotency-Key": "run-42:publish"}
    first = client.post("/webhooks/team", headers=headers, json={"content": "once"})
    count = len(mock.records())
    second = client.post("/webhooks/team", headers=headers, json={"content": "once"})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(mock.records()) == count
    assert sum(r["idempotency_key"] == "run-42:publish" for r in mock.records()) == 1


def test_webhook_idempotency_key_reused_for_other_content_conflicts(
    client: httpx.Client, mock: MockServices
) -> None:
    headers = {"Authorization": f"Bot {WEBHOOK_TOKEN}", "Idempotency-Key": "reused-key"}
    assert client.post("/webhooks/team", headers=headers, json={"content": "a"}).status_code == 200
    count = len(mock.records())
    conflict = client.post("/webhooks/team", headers=headers, json={"content": "b"})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "idempotency_key_reused"
    assert len(mock.records()) == count


def test_webhook_without_key_posts_every_time(client: httpx.Client, mock: MockServices) -> None:
    headers = {"Authorization": f"Bot {WEBHOOK_TOKEN}"}
    count = len(mock.records())
    ids = {
        client.post("/webhooks/team", headers=headers, json={"content": "x"}).json()["message_id"]
        for _ in range(2)
    }
    assert len(ids) == 2
    assert len(mock.records()) == count + 2


@pytest.mark.parametrize("body", [{}, {"content": ""}, {"content": "x", "extra": 1}, "not json"])
def test_webhook_invalid_body_is_422(client: httpx.Client, body: object) -> None:
    headers = {"Authorization": f"Bot {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
    response = client.post("/webhooks/team", headers=headers, content=content)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_body"


def test_records_need_the_admin_token(client: httpx.Client) -> None:
    assert client.get("/_records").status_code == 404
    assert client.get("/_records", headers={"X-Mock-Admin-Token": "guess"}).status_code == 404


def test_log_line_per_request(client: httpx.Client, mock: MockServices) -> None:
    client.get(
        "/snippets/replay",
        headers={"Authorization": f"Bearer {WIKI_TOKEN}", "Host": "wiki.local"},
    )
    line = wait_for_line(mock, lambda s: "/snippets/replay" in s and "host=wiki.local" in s)
    match = LOG_LINE.match(line)
    assert match, line
    assert match["method"] == "GET"
    assert match["auth"] == "Bearer…"
    assert match["status"] == "200"
    assert WIKI_TOKEN not in "\n".join(mock.log_lines())

    client.post("/webhooks/log-check", headers={"Host": "webhook.local"}, json={"content": "x"})
    line = wait_for_line(mock, lambda s: "/webhooks/log-check" in s)
    assert line == "[mock-services] POST /webhooks/log-check (host=webhook.local, auth=none) → 401"

    # A short scheme must not let the first characters of the token into the log.
    client.post(
        "/webhooks/log-bot",
        headers={"Authorization": f"Bot {WEBHOOK_TOKEN}", "Host": "webhook.local"},
        json={"content": "x"},
    )
    line = wait_for_line(mock, lambda s: "/webhooks/log-bot" in s)
    assert line == "[mock-services] POST /webhooks/log-bot (host=webhook.local, auth=Bot…) → 200"


def test_app_refuses_empty_tokens() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        create_app(wiki_token="", webhook_token="x")
    with pytest.raises(ConfigurationError):
        MockServices(wiki_token="x", webhook_token="")


def test_read_mock_tokens_from_lookup() -> None:
    store = {"wiki-token": {"value": "w"}, "webhook-token": {"value": "h"}}
    tokens = read_mock_tokens(store.__getitem__)
    assert (tokens.wiki_token, tokens.webhook_token) == ("w", "h")
    assert repr(tokens) == "MockTokens()"


@pytest.mark.parametrize(
    ("store", "missing"),
    [
        ({"webhook-token": {"value": "h"}}, "wiki-token"),
        ({"wiki-token": {"value": "w"}}, "webhook-token"),
        ({"wiki-token": {"value": "w"}, "webhook-token": {"other": "h"}}, "webhook-token"),
    ],
)
def test_read_mock_tokens_missing_secret_is_clear(
    store: dict[str, dict[str, str]], missing: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        read_mock_tokens(store.__getitem__)
    message = str(info.value)
    assert repr(missing) in message and "bash setup.sh" in message
    assert "'w'" not in message and "'h'" not in message


def test_stop_is_idempotent_and_frees_the_port() -> None:
    services = MockServices(wiki_token="a", webhook_token="b").start()
    port = services.port
    services.stop()
    services.stop()
    assert not services.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
