"""Mock wiki and webhook services for the stages and the tests.

``create_app`` is the FastAPI app (all the container image needs); ``MockServices`` runs it
as a local uvicorn process, and ``read_mock_tokens`` reads its tokens from Kitaru secrets.
The lifecycle names are imported lazily so that the app alone needs only FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mocks.app import SNIPPETS, create_app

if TYPE_CHECKING:
    from mocks.server import (
        WEBHOOK_TOKEN_SECRET,
        WIKI_TOKEN_SECRET,
        MockServices,
        MockTokens,
        read_mock_tokens,
    )

__all__ = [
    "SNIPPETS",
    "WEBHOOK_TOKEN_SECRET",
    "WIKI_TOKEN_SECRET",
    "MockServices",
    "MockTokens",
    "create_app",
    "read_mock_tokens",
]

_LAZY = {
    "WEBHOOK_TOKEN_SECRET",
    "WIKI_TOKEN_SECRET",
    "MockServices",
    "MockTokens",
    "read_mock_tokens",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from mocks import server

        return getattr(server, name)
    raise AttributeError(f"module 'mocks' has no attribute {name!r}")
