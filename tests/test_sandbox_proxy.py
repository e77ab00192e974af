"""The proxy seam of the bwrap backend, with a tiny HTTP server on a host Unix socket.

The only way out of the sandbox is the bind-mounted socket, forwarded to 127.0.0.1 inside.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent_harness_platform.errors import ConfigurationError
from agent_harness_platform.sandbox import (
    PROXY_CA,
    PROXY_SOCKET,
    BwrapSandbox,
    HostSandbox,
    ProxyEndpoint,
    SandboxConfig,
)

pytestmark = pytest.mark.timeout(60)


@dataclass
class FakeProxy:
    """What the fake proxy saw."""

    socket_path: Path
    ca_cert: Path
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        seen: FakeProxy = self.server.seen  # type: ignore[attr-defined]
        seen.requests.append((self.path, self.headers.get("Proxy-Authorization")))
        body = f"via proxy: {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        request, _ = super().get_request()
        return request, ("unix-socket", 0)  # http.server expects a (host, port) client address


@pytest.fixture
def fake_proxy() -> Iterator[FakeProxy]:
    # Not under pytest's tmp_path: the sandbox user must be able to traverse every directory
    # on the way to the socket (0711 here; the socket itself 0666).
    directory = Path(tempfile.mkdtemp(prefix="ahp-test-proxy-"))
    directory.chmod(0o711)
    seen = FakeProxy(socket_path=directory / "proxy.sock", ca_cert=directory / "ca.pem")
    seen.ca_cert.write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    seen.ca_cert.chmod(0o644)
    server = _UnixHTTPServer(str(seen.socket_path), _Handler)
    server.seen = seen  # type: ignore[attr-defined]
    os.chmod(seen.socket_path, 0o666)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        shutil.rmtree(directory)


def proxied_config(proxy: FakeProxy) -> SandboxConfig:
    url = "http://run-token@127.0.0.1:3128"
    endpoint = ProxyEndpoint(
        socket_path=proxy.socket_path,
        ca_cert=proxy.ca_cert,
        env={"HTTP_PROXY": url, "http_proxy": url, "HTTPS_PROXY": url, "https_proxy": url},
    )
    return SandboxConfig(proxy=endpoint)


def test_the_proxy_is_reachable_through_the_forwarder(fake_proxy: FakeProxy) -> None:
    with BwrapSandbox(proxied_config(fake_proxy)) as sb:
        result = sb.run("curl -sS --max-time 5 http://example.com/path?q=1")
        assert result.exit_code == 0, result
        assert result.stdout == "via proxy: http://example.com/path?q=1\n"
        assert fake_proxy.requests == [("http://example.com/path?q=1", "Basic cnVuLXRva2VuOg==")]
        # Still nothing else: the network namespace has only lo.
        assert sb.run("ip -o link | wc -l").stdout == "1\n"
        assert sb.run("timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'").exit_code != 0


def test_ca_and_proxy_variables_inside(fake_proxy: FakeProxy) -> None:
    with BwrapSandbox(proxied_config(fake_proxy)) as sb:
        result = sb.run(
            "echo $SSL_CERT_FILE $CURL_CA_BUNDLE $REQUESTS_CA_BUNDLE; echo $HTTP_PROXY; "
            f"head -1 {PROXY_CA}; test -S {PROXY_SOCKET} && echo socket; touch {PROXY_CA}"
        )
        assert result.stdout.split("\n")[:4] == [
            f"{PROXY_CA} {PROXY_CA} {PROXY_CA}",
            "http://run-token@127.0.0.1:3128",
            "-----BEGIN CERTIFICATE-----",
            "socket",
        ]
        assert result.exit_code != 0  # the CA is read-only


def test_the_forwarder_survives_timeouts_and_restarts(fake_proxy: FakeProxy) -> None:
    with BwrapSandbox(proxied_config(fake_proxy)) as sb:
        assert sb.run("sleep 100", timeout=0.5).timed_out
        assert (
            sb.run("curl -sS --max-time 5 http://a.test/1").stdout == "via proxy: http://a.test/1\n"
        )
        sb.run("exit 1")
        after = sb.run("curl -sS --max-time 5 http://a.test/2")
        assert after.restarted
        assert after.stdout == "via proxy: http://a.test/2\n"


def test_without_a_proxy_nothing_listens_inside() -> None:
    with BwrapSandbox(SandboxConfig()) as sb:
        result = sb.run("curl -sS --max-time 3 -x http://127.0.0.1:3128 http://example.com/")
        assert result.exit_code != 0
        assert sb.run("test -e /run/ahp || echo absent").stdout == "absent\n"


def test_missing_socket_is_a_configuration_error(tmp_path: Path) -> None:
    config = SandboxConfig(proxy=ProxyEndpoint(socket_path=tmp_path / "missing.sock"))
    sb = BwrapSandbox(config)
    with pytest.raises(ConfigurationError, match="start the proxy first"):
        sb.start()
    sb.close()


def test_host_backend_refuses_a_proxy(fake_proxy: FakeProxy) -> None:
    with pytest.raises(ConfigurationError, match="cannot confine"):
        HostSandbox(proxied_config(fake_proxy))
