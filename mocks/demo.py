"""The internal services the stage demos talk to: started here, or already running.

``AHP_MOCK_URL`` points the stages at a mock server that is already running (tests use this
to read one mock's records across several runs and processes); otherwise a fresh mock server
is started for the run with the tokens from the Kitaru secrets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mocks.server import MockServices

__all__ = ["MOCK_HOSTS", "DemoServices", "demo_services"]

MOCK_HOSTS = ("wiki.local", "webhook.local")
"""Host names the demos use; the credential proxy routes them to the mock server."""


@dataclass(frozen=True)
class DemoServices:
    """Where the mock server listens, in the shapes the session wants."""

    base_url: str

    @property
    def proxy_upstreams(self) -> dict[str, str]:
        """Host -> URL map for the credential proxy (like a hosts file inside the proxy)."""
        return dict.fromkeys(MOCK_HOSTS, self.base_url)

    @property
    def service_urls(self) -> dict[str, str]:
        """Base URLs for the typed services' host-side handlers."""
        return {"wiki": self.base_url, "webhook": self.base_url}


@contextmanager
def demo_services() -> Iterator[DemoServices]:
    """Yield the demo services for one run, starting (and stopping) them when needed."""
    external = os.environ.get("AHP_MOCK_URL", "").rstrip("/")
    if external:
        yield DemoServices(external)
        return
    with MockServices.from_kitaru_secrets() as mocks:
        yield DemoServices(mocks.base_url)
