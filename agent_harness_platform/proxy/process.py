"""Run the credential proxy: a mitmdump process plus a Unix-socket forwarder.

What this defends against: secrets leaking through the proxy's own plumbing. They never go
through argv or the environment of the proxy process: the resolved headers and the per-run
proxy token are written to a 0600 JSON file in a 0700 directory that the addon deletes as soon
as it has read it (and :meth:`CredentialProxy.stop` removes whatever is left). Everything the
proxy prints is forwarded to the ``agent_harness_platform.proxy`` logger with any secret value
redacted, and error messages carry only a redacted tail of its output.

Layout of one run (``runtime_dir``, mode 0711 so the sandbox user can reach the socket but not
list the directory)::

    proxy.sock      0666  the socket sandboxes connect to (socat -> 127.0.0.1:<port>)
    ca-cert.pem     0644  the CA certificate sandboxes trust (no key)
    private/        0700  config.json (secrets, deleted on read), confdir/ (CA key for mitmproxy)

What it does not defend against: another process running as the same host user, which can
read the private directory or this process's memory.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urlsplit

from agent_harness_platform._children import die_with_parent
from agent_harness_platform.errors import ConfigurationError, ProxyError
from agent_harness_platform.proxy.ca import default_state_dir, ensure_ca, write_mitmproxy_confdir
from agent_harness_platform.proxy.rules import (
    ProxyRule,
    ResolvedRule,
    SecretLookup,
    resolve_rule,
    validate_host,
)
from agent_harness_platform.sandbox.base import ProxyEndpoint

__all__ = [
    "MITMPROXY_SPEC",
    "PROXY_USER",
    "SANDBOX_PROXY_PORT",
    "CredentialProxy",
    "mitmdump_command",
    "write_private_json",
]

logger = logging.getLogger("agent_harness_platform.proxy")

MITMPROXY_SPEC = "mitmproxy==11.0.2"
"""The mitmproxy release the addon is written for (the last one for Python 3.11)."""

PROXY_USER = "ahp"
"""User name of the proxy credentials; the password is the per-run token."""

SANDBOX_PROXY_PORT = 3128
"""The port the sandbox's forwarder listens on (127.0.0.1 inside the sandbox)."""

ADDON_PATH = Path(__file__).with_name("addon.py")
_STARTED = re.compile(r"^\[proxy\] Started credential proxy on 127\.0\.0\.1:(\d+) ")
_CREDENTIAL_VAR = re.compile(r"(?i)(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)")
_SETUP_HINT = "run `bash setup.sh` (it installs socat and pre-fetches mitmproxy with uvx)"


def mitmdump_command() -> list[str]:
    """The command that starts mitmdump.

    ``$AHP_MITMDUMP`` (path of a mitmdump binary, e.g. in the proxy container image) wins;
    otherwise ``uvx --from mitmproxy==11.0.2 mitmdump``, which runs it from its own isolated
    environment (mitmproxy's pins conflict with this project's httpx/uvicorn).
    """
    if override := os.environ.get("AHP_MITMDUMP"):
        return [override]
    uvx = shutil.which("uvx")
    if uvx:
        return [uvx, "--from", MITMPROXY_SPEC, "mitmdump"]
    uv = shutil.which("uv")
    if uv:
        return [uv, "tool", "run", "--from", MITMPROXY_SPEC, "mitmdump"]
    raise ProxyError(
        f"cannot start the credential proxy: neither uvx nor uv is on PATH; {_SETUP_HINT}",
        code="proxy_unavailable",
    )


def _parse_override(host: str, url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ConfigurationError(
            f"upstream override for {host!r} must look like 'http://127.0.0.1:8080', got {url!r}"
        )
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ConfigurationError(
            f"upstream override for {host!r} must be scheme://host:port only, got {url!r}"
        )
    return {"scheme": parts.scheme, "host": parts.hostname, "port": parts.port}


class CredentialProxy:
    """The credential proxy for one run. Use as a context manager, or ``start()``/``stop()``.

    ``rules`` decide which headers go to which hosts; ``allowed_hosts`` pass through without
    injection (same exact-or-subdomain matching); every other host is denied. Header
    templates are resolved at ``start()`` through ``secret_lookup`` (Kitaru secrets by
    default). ``upstream_overrides`` map a host to ``scheme://ip:port`` and act like a hosts
    file inside the proxy (``{"wiki.local": "http://127.0.0.1:8123"}``); the Host header and
    TLS server name are kept. ``upstream_ca_files`` are extra CA certificates (PEM) the proxy
    trusts, on top of the public roots, when it verifies HTTPS upstreams. ``state_dir`` holds
    the CA (see :func:`~agent_harness_platform.proxy.ca.default_state_dir`).
    """

    def __init__(
        self,
        rules: Sequence[ProxyRule],
        *,
        allowed_hosts: Iterable[str] = (),
        upstream_overrides: Mapping[str, str] | None = None,
        secret_lookup: SecretLookup | None = None,
        state_dir: Path | None = None,
        upstream_ca_files: Sequence[Path] = (),
        start_timeout: float = 60.0,
    ) -> None:
        self.rules: tuple[ProxyRule, ...] = tuple(rules)
        owners: dict[str, str] = {}
        for rule in self.rules:
            for host in rule.hosts:
                if host in owners and owners[host] != rule.name:
                    raise ConfigurationError(
                        f"host {host!r} is named by two proxy rules ({owners[host]!r} and "
                        f"{rule.name!r}); a host may get credentials from one rule only"
                    )
                owners[host] = rule.name
        self.allowed_hosts: tuple[str, ...] = tuple(
            dict.fromkeys(validate_host(h, what="allowed host") for h in allowed_hosts)
        )
        self._overrides = {
            validate_host(host, what="upstream override host"): _parse_override(host, url)
            for host, url in (upstream_overrides or {}).items()
        }
        for path in upstream_ca_files:
            if not Path(path).is_file():
                raise ConfigurationError(f"upstream CA file {str(path)!r} does not exist")
        self._upstream_ca_files = tuple(Path(p) for p in upstream_ca_files)
        self._secret_lookup = secret_lookup
        self._state_dir = state_dir or default_state_dir()
        self._start_timeout = start_timeout

        self._token = ""
        self._redact: tuple[str, ...] = ()
        self._process: subprocess.Popen[bytes] | None = None
        self._forwarder: subprocess.Popen[bytes] | None = None
        self._runtime_dir: Path | None = None
        self._port: int | None = None
        self._started = threading.Event()
        self._stopping = False
        self._output_tail: collections.deque[str] = collections.deque(maxlen=30)
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- public surface ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port mitmdump listens on (127.0.0.1)."""
        if self._port is None:
            raise ProxyError("the credential proxy is not started", code="proxy_not_started")
        return self._port

    @property
    def url_with_token(self) -> str:
        """``http://ahp:<token>@127.0.0.1:<port>``: the proxy URL for host-side clients."""
        return f"http://{PROXY_USER}:{self._token}@127.0.0.1:{self.port}"

    @property
    def runtime_dir(self) -> Path:
        """This run's directory (socket, CA certificate, private config)."""
        if self._runtime_dir is None:
            raise ProxyError("the credential proxy is not started", code="proxy_not_started")
        return self._runtime_dir

    @property
    def socket_path(self) -> Path:
        """The Unix socket that leads to the proxy (what sandboxes bind-mount)."""
        return self.runtime_dir / "proxy.sock"

    @property
    def config_path(self) -> Path:
        """Where the secret-bearing config was written; gone once the proxy has read it."""
        return self.runtime_dir / "private" / "config.json"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate sandboxes must trust (a per-run copy, without the key)."""
        return self.runtime_dir / "ca-cert.pem"

    @property
    def pid(self) -> int | None:
        """Process id (and process group id) of the proxy process, when running."""
        return self._process.pid if self._process else None

    @property
    def endpoint(self) -> ProxyEndpoint:
        """What a sandbox needs: the socket, the CA and the proxy variables (token only)."""
        url = f"http://{PROXY_USER}:{self._token}@127.0.0.1:{SANDBOX_PROXY_PORT}"
        env = {
            "HTTP_PROXY": url,
            "HTTPS_PROXY": url,
            "http_proxy": url,
            "https_proxy": url,
            "NO_PROXY": "",
            "no_proxy": "",
        }
        return ProxyEndpoint(
            socket_path=self.socket_path,
            ca_cert=self.ca_cert,
            inside_port=SANDBOX_PROXY_PORT,
            env=env,
        )

    def is_alive(self) -> bool:
        """Whether both the proxy and its socket forwarder are running."""
        return (
            self._started.is_set()
            and self._process is not None
            and self._process.poll() is None
            and self._forwarder is not None
            and self._forwarder.poll() is None
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Resolve secrets, start mitmdump and the forwarder, wait until both accept."""
        with self._lock:
            if self._process is not None:
                return self
            resolved = [resolve_rule(rule, self._secret_lookup) for rule in self.rules]
            socat = shutil.which("socat")
            if socat is None:
                raise ProxyError(
                    f"cannot start the credential proxy: socat is not installed; {_SETUP_HINT}",
                    code="proxy_unavailable",
                )
            command = mitmdump_command()
            self._token = secrets.token_urlsafe(24)  # a new token for every run
            self._output_tail.clear()
            self._redact = (self._token, *sorted({v for r in resolved for v in r.secret_values}))
            try:
                self._prepare_runtime_dir(resolved)
                self._start_mitmdump(command)
                self._start_forwarder(socat)
            except BaseException:
                self._teardown()
                raise
            return self

    def _prepare_runtime_dir(self, resolved: list[ResolvedRule]) -> None:
        ca = ensure_ca(self._state_dir)
        runtime = Path(tempfile.mkdtemp(prefix="ahp-proxy-"))
        self._runtime_dir = runtime
        os.chmod(runtime, 0o711)
        private = runtime / "private"
        private.mkdir(mode=0o700)
        write_mitmproxy_confdir(ca, private / "confdir")
        shutil.copyfile(ca.cert_path, self.ca_cert)
        os.chmod(self.ca_cert, 0o644)
        if self._upstream_ca_files:
            import certifi  # the public roots, so adding a CA never drops them

            bundle = Path(certifi.where()).read_bytes()
            for path in self._upstream_ca_files:
                bundle += b"\n" + path.read_bytes()
            (private / "upstream-ca.pem").write_bytes(bundle)
        config = {
            "version": 1,
            "proxy_token": self._token,
            "rules": [
                {"name": r.name, "hosts": list(r.hosts), "headers": dict(r.headers)}
                for r in resolved
            ],
            "allowed_hosts": list(self.allowed_hosts),
            "upstream_overrides": self._overrides,
            "redact": sorted({v for r in resolved for v in r.secret_values}),
            "owner_pid": os.getpid(),
        }
        write_private_json(self.config_path, config)

    def _start_mitmdump(self, command: list[str]) -> None:
        private = self.runtime_dir / "private"
        argv = [
            *command,
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "-s",
            str(ADDON_PATH),
            "--set",
            f"confdir={private / 'confdir'}",
            "--set",
            f"ahp_config={self.config_path}",
            # No upstream connection before our request-level checks have run.
            "--set",
            "connection_strategy=lazy",
            "--set",
            "upstream_cert=false",
            # Large bodies (downloads via allowed hosts) stream instead of sitting in memory;
            # headers, the only thing we change, are handled before streaming starts.
            "--set",
            "stream_large_bodies=1m",
            "--set",
            "flow_detail=0",
            "--set",
            "termlog_verbosity=warn",
        ]
        if self._upstream_ca_files:
            argv += ["--set", f"ssl_verify_upstream_trusted_ca={private / 'upstream-ca.pem'}"]
        # The proxy needs none of the host's own credentials (provider API keys etc.).
        env = {k: v for k, v in os.environ.items() if not _CREDENTIAL_VAR.search(k)}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: stop() kills uvx and mitmdump
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            raise ProxyError(
                f"cannot start the credential proxy ({command[0]}: {exc.strerror}); {_SETUP_HINT}",
                code="proxy_unavailable",
            ) from exc
        assert self._process.stdout is not None and self._process.stderr is not None
        self._readers = [
            self._reader(self._process.stdout, logging.INFO, "stdout"),
            self._reader(self._process.stderr, logging.WARNING, "stderr"),
        ]
        deadline = time.monotonic() + self._start_timeout
        while not self._started.wait(0.05):
            if self._process.poll() is not None:
                for thread in self._readers:
                    thread.join(timeout=2)
                raise ProxyError(
                    f"the credential proxy exited during start (exit code "
                    f"{self._process.returncode}); {_SETUP_HINT}.{self._tail()}",
                    code="proxy_start_failed",
                )
            if time.monotonic() > deadline:
                raise ProxyError(
                    f"the credential proxy did not start within {self._start_timeout:.0f} s; "
                    f"{_SETUP_HINT}.{self._tail()}",
                    code="proxy_start_failed",
                )
        _wait_connectable(("127.0.0.1", self.port), deadline)

    def _start_forwarder(self, socat: str) -> None:
        sock = self.socket_path
        self._forwarder = subprocess.Popen(
            [
                socat,
                f"UNIX-LISTEN:{sock},fork,mode=0666,unlink-early",
                f"TCP:127.0.0.1:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + 10
        while not sock.exists():
            if self._forwarder.poll() is not None or time.monotonic() > deadline:
                raise ProxyError(
                    f"the proxy socket forwarder (socat) did not create {sock}",
                    code="proxy_start_failed",
                )
            time.sleep(0.01)

    # -- output ----------------------------------------------------------------------------

    def _reader(self, stream: IO[bytes], level: int, name: str) -> threading.Thread:
        def pump() -> None:
            for raw in iter(stream.readline, b""):
                line = self._redacted(raw.decode("utf-8", errors="replace").rstrip())
                if not line:
                    continue
                self._output_tail.append(line)
                match = _STARTED.match(line)
                if match:
                    self._port = int(match.group(1))
                    self._started.set()
                if line.startswith("[proxy] "):
                    logger.info("%s", line)
                else:
                    logger.log(level, "[proxy] mitmdump: %s", line)
            stream.close()
            if name == "stdout":
                self._on_exit()

        thread = threading.Thread(target=pump, name=f"ahp-proxy-{name}", daemon=True)
        thread.start()
        return thread

    def _on_exit(self) -> None:
        """The proxy's stdout closed: if nobody asked it to stop, it died."""
        process = self._process
        if self._stopping or process is None or not self._started.is_set():
            return
        code = process.wait()
        logger.warning("[proxy] credential proxy exited unexpectedly (exit code %s)", code)
        # Close the socket too, so sandboxes get "connection refused" at once instead of a
        # forwarder that accepts and then hangs up.
        _terminate_group(self._forwarder)

    def _redacted(self, text: str) -> str:
        for value in self._redact:
            if value:
                text = text.replace(value, "***")
        return text

    def _tail(self) -> str:
        lines = list(self._output_tail)[-12:]
        if not lines:
            return ""
        return "\nLast proxy output:\n  " + "\n  ".join(lines)

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the proxy and the forwarder, remove the socket, config and CA copies."""
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        self._stopping = True
        _terminate_group(self._forwarder)
        _terminate_group(self._process)
        for thread in self._readers:
            thread.join(timeout=5)
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        self._runtime_dir = None
        self._process = None
        self._forwarder = None
        self._readers = []
        self._started.clear()
        self._port = None
        self._stopping = False


def write_private_json(path: Path, data: object) -> None:
    """Write ``data`` as JSON to ``path``, created 0600 (never readable by anyone else)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        json.dump(data, fh)


def _terminate_group(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM the process group of ``process`` (its own session), then SIGKILL it."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # Children (socat's per-connection forks, mitmdump under uvx) may outlive the leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_connectable(address: tuple[str, int], deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(address, timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ProxyError(
                    f"the credential proxy does not accept connections on {address[1]}",
                    code="proxy_start_failed",
                ) from exc
            time.sleep(0.02)
