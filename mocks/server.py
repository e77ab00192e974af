"""Run the mock services as a local uvicorn process.

:class:`MockServices` binds a free 127.0.0.1 port itself and hands the listening socket to
``python -m mocks --fd N`` (no race between picking a port and using it), passes the tokens in
the child's environment (never argv), waits for ``/healthz``, and forwards the child's request
log lines to the ``agent_harness_platform.mocks`` logger. The mock is a stand-in for a remote
service, not a trust boundary: the tokens it checks are the ones the proxy injects.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from agent_harness_platform._children import die_with_parent
from agent_harness_platform.errors import ConfigurationError, HarnessRuntimeError

__all__ = [
    "WEBHOOK_TOKEN_SECRET",
    "WIKI_TOKEN_SECRET",
    "MockServices",
    "MockTokens",
    "read_mock_tokens",
]

logger = logging.getLogger("agent_harness_platform.mocks")

WIKI_TOKEN_SECRET = "wiki-token"
"""Kitaru secret holding the wiki token under the key ``value``."""
WEBHOOK_TOKEN_SECRET = "webhook-token"
"""Kitaru secret holding the webhook token under the key ``value``."""

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MockTokens:
    """The two tokens the mock services accept. ``repr`` never shows them."""

    wiki_token: str = field(repr=False)
    webhook_token: str = field(repr=False)


def read_mock_tokens(lookup: Callable[[str], Mapping[str, str]] | None = None) -> MockTokens:
    """Read the tokens from the Kitaru secrets ``wiki-token`` and ``webhook-token``.

    ``lookup`` returns a secret's values (raising ``KeyError`` when it does not exist); it
    defaults to the Kitaru store. A missing secret or key is a :class:`ConfigurationError`
    naming the secret and saying that ``bash setup.sh`` creates it.
    """
    if lookup is None:
        from agent_harness_platform.proxy.rules import kitaru_secret_lookup

        lookup = kitaru_secret_lookup
    values: list[str] = []
    for name in (WIKI_TOKEN_SECRET, WEBHOOK_TOKEN_SECRET):
        try:
            value = lookup(name).get("value")
        except KeyError:
            value = None
        if not value:
            raise ConfigurationError(
                f"Kitaru secret {name!r} (key 'value') is missing; `bash setup.sh` creates it "
                f"(or: `kitaru secrets set {name} --value=<token>`)"
            )
        values.append(value)
    return MockTokens(wiki_token=values[0], webhook_token=values[1])


class MockServices:
    """The wiki + webhook mocks in a uvicorn child process on ``127.0.0.1:<free port>``.

    Use as a context manager (or ``start()``/``stop()``). ``base_url`` and ``port`` say where
    it listens; :meth:`records` returns the webhook posts it recorded; :meth:`log_lines` the
    ``[mock-services]`` lines it printed so far.
    """

    def __init__(
        self,
        *,
        wiki_token: str,
        webhook_token: str,
        startup_timeout: float = 30.0,
        python: str = sys.executable,
    ) -> None:
        if not wiki_token or not webhook_token:
            raise ConfigurationError("MockServices needs a non-empty wiki_token and webhook_token")
        self._tokens = MockTokens(wiki_token=wiki_token, webhook_token=webhook_token)
        self._admin_token = secrets.token_urlsafe(16)
        self._startup_timeout = startup_timeout
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=2000)
        self._readers: list[threading.Thread] = []

    @classmethod
    def from_kitaru_secrets(cls, **kwargs: Any) -> MockServices:
        """Mock services whose tokens come from the ``wiki-token``/``webhook-token`` secrets."""
        tokens = read_mock_tokens()
        return cls(wiki_token=tokens.wiki_token, webhook_token=tokens.webhook_token, **kwargs)

    @property
    def port(self) -> int:
        """The port on 127.0.0.1 the mock listens on."""
        if self._port is None:
            raise HarnessRuntimeError("the mock services are not started", code="mock_not_started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the uvicorn child, when running."""
        return self._process.pid if self._process else None

    def is_alive(self) -> bool:
        """Whether the child process is running."""
        return self._process is not None and self._process.poll() is None

    def log_lines(self) -> list[str]:
        """The lines the mock printed so far (request log lines and any errors)."""
        return list(self._lines)

    def records(self) -> list[dict[str, Any]]:
        """The webhook posts recorded so far, oldest first."""
        response = httpx.get(
            f"{self.base_url}/_records",
            headers={"X-Mock-Admin-Token": self._admin_token},
            timeout=5,
        )
        response.raise_for_status()
        posts: list[dict[str, Any]] = response.json()["posts"]
        return posts

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the child and wait until ``/healthz`` answers."""
        if self._process is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        env = dict(os.environ)
        env.update(
            AHP_MOCK_WIKI_TOKEN=self._tokens.wiki_token,
            AHP_MOCK_WEBHOOK_TOKEN=self._tokens.webhook_token,
            AHP_MOCK_ADMIN_TOKEN=self._admin_token,
            PYTHONUNBUFFERED="1",
            PYTHONIOENCODING="utf-8",
            PYTHONPATH=os.pathsep.join(
                p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
            ),
        )
        try:
            self._process = subprocess.Popen(
                [self._python, "-m", "mocks", "--fd", str(listener.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
                preexec_fn=die_with_parent,  # no orphaned mock after a kill -9 of the run
            )
        finally:
            listener.close()
        self._port = port
        assert self._process.stdout is not None
        self._readers = [self._reader(self._process.stdout)]
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        url = f"http://127.0.0.1:{self._port}/healthz"
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                for thread in self._readers:
                    thread.join(timeout=2)
                raise HarnessRuntimeError(
                    f"the mock services exited during start (exit code "
                    f"{self._process.returncode}).{self._tail()}",
                    code="mock_start_failed",
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise HarnessRuntimeError(
                    f"the mock services did not answer /healthz within "
                    f"{self._startup_timeout:.0f} s.{self._tail()}",
                    code="mock_start_failed",
                )
            time.sleep(0.05)

    def _reader(self, stream: IO[bytes]) -> threading.Thread:
        def pump() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip()
                for token in (self._tokens.wiki_token, self._tokens.webhook_token):
                    line = line.replace(token, "***")
                if line:
                    self._lines.append(line)
                    logger.info("%s", line)
            stream.close()

        thread = threading.Thread(target=pump, name="ahp-mocks-output", daemon=True)
        thread.start()
        return thread

    def _tail(self) -> str:
        lines = list(self._lines)[-12:]
        return ("\nLast mock output:\n  " + "\n  ".join(lines)) if lines else ""

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for thread in self._readers:
            thread.join(timeout=5)
        self._process = None
        self._readers = []
        self._port = None
