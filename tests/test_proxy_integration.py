"""The credential proxy end to end: real mitmdump, real uvicorn mocks, loopback only.

One proxy per module. Upstreams: the mock services (``wiki.local``, ``webhook.local``), a
plain-HTTP echo server that reports the headers it received (``echo.local`` and friends) and
an HTTPS echo server with a throwaway certificate for ``secure.local``. Lookalike hosts are
routed to the echo server too, so a proxy that wrongly let them through would be caught
delivering a credential.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import logging
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent_harness_platform.proxy import CredentialProxy, ProxyRule
from mocks import MockServices

WIKI_TOKEN = "wiki-secret-5b9e1c7a3d"
WEBHOOK_TOKEN = "hook-secret-8c2f6a0e4b"
ECHO_TOKEN = "echo-secret-1f3d5b7c9e"
SECURE_TOKEN = "secure-secret-2a4c6e8f0b"
ALL_SECRETS = (WIKI_TOKEN, WEBHOOK_TOKEN, ECHO_TOKEN, SECURE_TOKEN)
STORE = {
    "wiki-token": {"value": WIKI_TOKEN},
    "webhook-token": {"value": WEBHOOK_TOKEN},
    "echo-token": {"value": ECHO_TOKEN},
    "secure-token": {"value": SECURE_TOKEN},
}
RULES = [
    ProxyRule(
        name="wiki",
        hosts=["wiki.local"],
        headers={"Authorization": "Bearer {{ wiki-token.value }}"},
    ),
    ProxyRule(
        name="webhook",
        hosts=["webhook.local"],
        headers={"Authorization": "Bot {{ webhook-token.value }}"},
    ),
    ProxyRule(
        name="echo",
        hosts=["echo.local"],
        headers={"Authorization": "Bearer {{ echo-token.value }}", "X-Team": "platform"},
    ),
    ProxyRule(
        name="secure",
        hosts=["secure.local"],
        headers={"Authorization": "Bearer {{ secure-token.value }}"},
    ),
]
BIG = 3 * 1024 * 1024  # above the proxy's 1 MiB streaming threshold
LOOKALIKES = ["evilecho.local", "echo.local.evil.test", "echo-local", "echo.localhost"]


# -- local upstreams ---------------------------------------------------------------------


class EchoServer:
    """HTTP(S) server on 127.0.0.1 that records each request and echoes it back as JSON."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, object]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen: dict[str, object] = {
                    "method": self.command,
                    "path": self.path,
                    "headers": self.headers.items(),
                }
                owner.requests.append(seen)
                body = json.dumps(seen).encode()
                extra: dict[str, str] = {}
                if self.path.startswith("/big"):
                    body = b"x" * BIG
                if self.path.startswith("/reflect-header"):
                    extra["X-Seen-Authorization"] = self.headers.get("Authorization", "")
                if self.path.startswith("/gzip"):
                    body = gzip.compress(body)
                    extra["Content-Encoding"] = "gzip"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@dataclass(frozen=True)
class ThrowawayPKI:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def make_test_pki(directory: Path, hostname: str) -> ThrowawayPKI:
    """A throwaway CA and a server certificate for ``hostname`` signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = ThrowawayPKI(
        directory / "test-ca.pem", directory / "server.pem", directory / "server-key.pem"
    )
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


class LineCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if predicate(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no matching proxy log line in {self.lines[-10:]}")


@dataclass
class World:
    proxy: CredentialProxy
    mock: MockServices
    echo: EchoServer
    secure: EchoServer
    log: LineCollector
    tmp: Path
    extra: dict[str, object] = field(default_factory=dict)

    def client(self, proxy: str | None = None, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("verify", ssl.create_default_context(cafile=str(self.proxy.ca_cert)))
        return httpx.Client(
            proxy=proxy or self.proxy.url_with_token,
            trust_env=False,
            timeout=10,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("proxy-world")
    pki = make_test_pki(tmp, "secure.local")
    collector = LineCollector()
    proxy_logger = logging.getLogger("agent_harness_platform.proxy")
    old_level = proxy_logger.level
    proxy_logger.setLevel(logging.DEBUG)
    proxy_logger.addHandler(collector)
    echo = EchoServer()
    secure = EchoServer(pki.server_context())
    try:
        with MockServices(wiki_token=WIKI_TOKEN, webhook_token=WEBHOOK_TOKEN) as mock:
            echo_url = f"http://127.0.0.1:{echo.port}"
            overrides = {
                "wiki.local": mock.base_url,
                "webhook.local": mock.base_url,
                "echo.local": echo_url,
                "api.echo.local": echo_url,
                "open.test": echo_url,
                "api.open.test": echo_url,
                "secure.local": f"https://127.0.0.1:{secure.port}",
                **{host: echo_url for host in LOOKALIKES},
            }
            proxy = CredentialProxy(
                RULES,
                allowed_hosts=["open.test"],
                upstream_overrides=overrides,
                secret_lookup=STORE.__getitem__,
                state_dir=tmp / "state",
                upstream_ca_files=[pki.ca_cert],
            )
            with proxy:
                yield World(proxy, mock, echo, secure, collector, tmp)
    finally:
        echo.close()
        secure.close()
        proxy_logger.removeHandler(collector)
        proxy_logger.setLevel(old_level)


def received(server: EchoServer, path: str) -> dict[str, object]:
    """What the upstream itself saw for ``path`` (responses are scrubbed; this is not)."""
    matches = [r for r in server.requests if r["path"] == path]
    assert len(matches) == 1, f"{path} reached the upstream {len(matches)} times"
    return matches[0]


def header_values(seen: dict[str, object], name: str) -> list[str]:
    headers = seen["headers"]
    assert isinstance(headers, list)
    return [v for k, v in headers if k.lower() == name.lower()]


# -- injection ---------------------------------------------------------------------------


def test_started_line_names_port_and_hosts(world: World) -> None:
    line = world.log.wait_for(lambda s: s.startswith("[proxy] Started credential proxy"))
    assert line == (
        f"[proxy] Started credential proxy on 127.0.0.1:{world.proxy.port} "
        "(injecting for hosts=['wiki.local', 'webhook.local', 'echo.local', 'secure.local'])"
    )
    assert world.proxy.is_alive()


def test_wiki_gets_the_bearer_token_injected(world: World) -> None:
    with world.client() as client:
        response = client.get("http://wiki.local/snippets/durability")
    assert response.status_code == 200  # the mock only answers 200 to the right Bearer token
    assert len(response.json()["snippets"]) == 2
    world.log.wait_for(lambda s: s == "[proxy] injected headers for wiki.local: ['Authorization']")
    # The mock saw the original Host, not the override address.
    assert any(
        "GET /snippets/durability (host=wiki.local, auth=Bearer…) → 200" in line
        for line in world.mock.log_lines()
    )


def test_webhook_post_through_the_proxy_is_recorded(world: World) -> None:
    with world.client() as client:
        response = client.post(
            "http://webhook.local/webhooks/team",
            json={"content": "via proxy"},
            headers={"Idempotency-Key": "proxy-test-1"},
        )
    assert response.status_code == 200
    posts = [p for p in world.mock.records() if p["idempotency_key"] == "proxy-test-1"]
    assert len(posts) == 1 and posts[0]["host"] == "webhook.local"


def test_forged_authorization_is_replaced(world: World) -> None:
    with world.client() as client:
        mock_response = client.get(
            "http://wiki.local/snippets/replay", headers={"Authorization": "Bearer forged"}
        )
        client.get(
            "http://echo.local/forged", headers={"Authorization": "Basic Zm9yZ2Vk", "X-Team": "x"}
        )
    echoed = received(world.echo, "/forged")
    assert mock_response.status_code == 200
    assert header_values(echoed, "Authorization") == [f"Bearer {ECHO_TOKEN}"]
    assert header_values(echoed, "X-Team") == ["platform"]
    assert header_values(echoed, "Proxy-Authorization") == []


@pytest.mark.parametrize("url", ["http://wiki.local/healthz", "https://secure.local/again"])
def test_kept_alive_connection_serves_many_requests(world: World, url: str) -> None:
    """Upstream connections to override targets are reused, not piled up until a stall."""
    with world.client() as client:
        started = time.monotonic()
        statuses = [client.get(url).status_code for _ in range(25)]
    assert statuses == [200] * 25
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("url", ["http://open.test/big", "http://echo.local/big"])
def test_large_response_streams_through(world: World, url: str) -> None:
    with world.client() as client:
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.content) == BIG


def test_subdomain_of_a_rule_host_gets_the_credential(world: World) -> None:
    with world.client() as client:
        client.get("http://api.echo.local/subdomain")
    echoed = received(world.echo, "/subdomain")
    assert header_values(echoed, "Authorization") == [f"Bearer {ECHO_TOKEN}"]
    assert header_values(echoed, "Host") == ["api.echo.local"]


# -- denial ------------------------------------------------------------------------------


def test_host_without_rule_is_denied_with_reason(world: World) -> None:
    with world.client() as client:
        response = client.get("http://evil.test/steal")
    assert response.status_code == 403
    assert "'evil.test'" in response.text and "no proxy rule" in response.text
    world.log.wait_for(lambda s: s == "[proxy] denied host=evil.test (no rule)")


def test_https_to_host_without_rule_is_denied_at_connect(world: World) -> None:
    with world.client() as client, pytest.raises(httpx.ProxyError, match="403"):
        client.get("https://evil.test/steal")


@pytest.mark.parametrize("host", LOOKALIKES)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_lookalike_hosts_get_no_credential(world: World, host: str, scheme: str) -> None:
    before = len(world.echo.requests)
    with world.client() as client:
        if scheme == "http":
            response = client.get(f"http://{host}/x", headers={"Authorization": "Bearer mine"})
            assert response.status_code == 403
            assert f"'{host}'" in response.text
        else:
            with pytest.raises(httpx.ProxyError, match="403"):
                client.get(f"https://{host}/x")
    time.sleep(0.1)
    assert len(world.echo.requests) == before  # nothing reached the upstream at all


def test_allowed_host_passes_without_injection(world: World) -> None:
    with world.client() as client:
        client.get("http://open.test/open-page", headers={"X-Own": "kept"})
        client.get("http://api.open.test/open-sub")
    echoed = received(world.echo, "/open-page")
    sub = received(world.echo, "/open-sub")
    assert header_values(echoed, "Authorization") == []
    assert header_values(echoed, "Proxy-Authorization") == []
    assert header_values(echoed, "X-Own") == ["kept"]
    assert header_values(sub, "Host") == ["api.open.test"]
    world.log.wait_for(lambda s: s.startswith("[proxy] allowed host=open.test"))


def test_tunnel_cannot_carry_a_request_for_another_host(world: World) -> None:
    """CONNECT to an allowed host, then name another host in Host: refused (domain fronting)."""
    token = world.proxy.url_with_token.split("@")[0].rsplit(":", 1)[1]
    auth = base64.b64encode(f"ahp:{token}".encode()).decode()
    before = len(world.echo.requests)
    with socket.create_connection(("127.0.0.1", world.proxy.port), timeout=5) as raw:
        raw.sendall(
            f"CONNECT open.test:443 HTTP/1.1\r\nHost: open.test:443\r\n"
            f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=str(world.proxy.ca_cert))
        with ctx.wrap_socket(raw, server_hostname="open.test") as tls:
            tls.sendall(b"GET /x HTTP/1.1\r\nHost: evilecho.local\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 403")
    assert b"'evilecho.local'" in reply and b"does not match destination open.test" in reply
    assert len(world.echo.requests) == before
    world.log.wait_for(
        lambda s: (
            s == "[proxy] denied host=evilecho.local "
            "(Host header does not match destination open.test)"
        )
    )


# -- proxy token -------------------------------------------------------------------------


def proxy_url(world: World, userinfo: str) -> str:
    return f"http://{userinfo}127.0.0.1:{world.proxy.port}"


@pytest.mark.parametrize("userinfo", ["", "ahp:wrong-token@", "someone:{token}@"])
def test_missing_or_wrong_proxy_token_is_407(world: World, userinfo: str) -> None:
    token = world.proxy.url_with_token.split("@")[0].rsplit(":", 1)[1]
    url = proxy_url(world, userinfo.format(token=token))
    with world.client(proxy=url) as client:
        response = client.get("http://wiki.local/snippets/durability")
        assert response.status_code == 407
        assert "proxy token" in response.text
        assert "Proxy-Authenticate" in response.headers
        with pytest.raises(httpx.ProxyError, match="407"):
            client.get("https://secure.local/")
    world.log.wait_for(lambda s: s == "[proxy] rejected request: missing or wrong proxy token")


# -- HTTPS interception ------------------------------------------------------------------


def test_https_is_intercepted_injected_and_verified(world: World) -> None:
    with world.client() as client:
        response = client.get("https://secure.local/account", headers={"Authorization": "x"})
    assert response.status_code == 200
    echoed = received(world.secure, "/account")
    assert header_values(echoed, "Authorization") == [f"Bearer {SECURE_TOKEN}"]
    assert header_values(echoed, "Host") == ["secure.local"]
    assert header_values(echoed, "Proxy-Authorization") == []
    world.log.wait_for(
        lambda s: s == "[proxy] injected headers for secure.local: ['Authorization']"
    )


def test_https_client_that_does_not_trust_the_ca_refuses(world: World) -> None:
    with world.client(verify=True) as client, pytest.raises(httpx.ConnectError):
        client.get("https://secure.local/account")


def test_https_to_a_plain_http_mock_is_downgraded_upstream(world: World) -> None:
    with world.client() as client:
        response = client.get("https://wiki.local/snippets/sandboxing")
    assert response.status_code == 200
    assert response.json()["topic"] == "sandboxing"


# -- the Unix socket (what sandboxes use) ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_raw_request_through_the_unix_socket(world: World) -> None:
    env_url = world.proxy.endpoint.env["HTTP_PROXY"]
    token = env_url.split("@")[0].rsplit(":", 1)[1]
    auth = base64.b64encode(f"ahp:{token}".encode()).decode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(5)
        raw.connect(str(world.proxy.endpoint.socket_path))
        raw.sendall(
            b"GET http://wiki.local/snippets/durability HTTP/1.1\r\nHost: wiki.local\r\n"
            + f"Proxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n".encode()
        )
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["topic"] == "durability"


def test_sandbox_style_forwarder_with_endpoint_env(world: World) -> None:
    """Do what a sandbox does: socat TCP->socket, then use HTTPS_PROXY and the CA only."""
    endpoint = world.proxy.endpoint
    port = free_port()
    forwarder = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            f"UNIX-CONNECT:{endpoint.socket_path}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "forwarder did not start"
                time.sleep(0.02)
        url = endpoint.env["HTTPS_PROXY"].replace(f":{endpoint.inside_port}", f":{port}")
        verify = ssl.create_default_context(cafile=str(endpoint.ca_cert))
        with httpx.Client(proxy=url, verify=verify, trust_env=False, timeout=10) as client:
            client.get("https://secure.local/from-sandbox")
            wiki = client.get("http://wiki.local/snippets/replay")
            denied = client.get("http://evil.test/")
    finally:
        forwarder.terminate()
        forwarder.wait()
    secure = received(world.secure, "/from-sandbox")
    assert header_values(secure, "Authorization") == [f"Bearer {SECURE_TOKEN}"]
    assert wiki.status_code == 200
    assert denied.status_code == 403


# -- nothing leaks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "host", "path", "secret"),
    [
        ("echo", "http://echo.local", "/reflect-body", ECHO_TOKEN),
        ("echo", "http://echo.local", "/reflect-header", ECHO_TOKEN),
        ("echo", "http://echo.local", "/gzip-reflect", ECHO_TOKEN),
        ("secure", "https://secure.local", "/reflect-header-tls", SECURE_TOKEN),
    ],
)
def test_credentials_reflected_by_the_upstream_are_redacted(
    world: World, upstream: str, host: str, path: str, secret: str
) -> None:
    with world.client() as client:
        response = client.get(host + path)
    assert response.status_code == 200
    # The upstream did get the credential...
    seen = received(getattr(world, upstream), path)
    assert header_values(seen, "Authorization") == [f"Bearer {secret}"]
    # ...but the sandbox never sees it come back, in the body or in a header.
    headers = json.dumps(dict(response.headers))
    assert secret not in response.text and secret not in headers
    assert header_values(response.json(), "Authorization") == ["Bearer [redacted by ahp proxy]"]
    if "header" in path:
        assert response.headers["X-Seen-Authorization"] == "Bearer [redacted by ahp proxy]"
    name = host.split("//")[1]
    world.log.wait_for(
        lambda s: s.startswith("[proxy] redacted ") and s.endswith(f"the response of {name}")
    )


def test_endpoint_files_and_permissions(world: World) -> None:
    proxy = world.proxy
    endpoint = proxy.endpoint
    assert endpoint.inside_port == 3128
    assert set(endpoint.env) >= {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "NO_PROXY",
    }
    assert endpoint.env["NO_PROXY"] == ""
    assert endpoint.env["HTTP_PROXY"].startswith("http://ahp:")
    assert endpoint.env["HTTP_PROXY"].endswith("@127.0.0.1:3128")
    flat = json.dumps(endpoint.env)
    for secret in ALL_SECRETS:
        assert secret not in flat
    assert endpoint.ca_cert is not None
    assert b"PRIVATE KEY" not in endpoint.ca_cert.read_bytes()
    assert stat.S_IMODE(endpoint.ca_cert.stat().st_mode) == 0o644
    assert stat.S_ISSOCK(endpoint.socket_path.stat().st_mode)
    assert stat.S_IMODE(endpoint.socket_path.stat().st_mode) == 0o666
    assert stat.S_IMODE(proxy.runtime_dir.stat().st_mode) == 0o711
    assert stat.S_IMODE(proxy.config_path.parent.stat().st_mode) == 0o700
    # The addon deleted the secret-bearing config as soon as it had read it.
    assert not proxy.config_path.exists()


def test_secret_values_never_reach_the_proxy_log(world: World) -> None:
    with world.client() as client:
        client.get("http://wiki.local/snippets/durability")
        client.get("https://secure.local/")
    world.log.wait_for(lambda s: "injected headers for secure.local" in s)
    text = "\n".join(world.log.lines)
    assert "[proxy] injected headers for wiki.local: ['Authorization']" in text
    for secret in ALL_SECRETS:
        assert secret not in text
    token = world.proxy.url_with_token.split("@")[0].rsplit(":", 1)[1]
    assert token not in text


def test_plain_http_host_header_must_match_the_url(world: World) -> None:
    before = len(world.echo.requests)
    with world.client() as client:
        response = client.get("http://echo.local/x", headers={"Host": "evilecho.local"})
    assert response.status_code == 403
    assert "does not match destination echo.local" in response.text
    assert len(world.echo.requests) == before
