"""How much latency the credential proxy adds on loopback.

    uv run python bench/bench_proxy.py [--requests 200]

Upstreams are small stdlib HTTP and HTTPS servers, each in its own process (so they do not
share the client's GIL). For each of HTTP and HTTPS it measures the median time of N requests
sent directly and N sent through the proxy (header injection + upstream override; for HTTPS,
TLS interception with the local CA and upstream verification against a throwaway CA), both
over a kept-alive connection and with a new connection per request (what a `curl` in the
sandbox does). Prints medians, p90, and the added latency and ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import multiprocessing
import ssl
import statistics
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent_harness_platform.proxy import CredentialProxy, ProxyRule

HOSTNAME = "bench.local"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port_queue: multiprocessing.Queue, cert: str | None, key: str | None) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if cert and key:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for HOSTNAME: (ca, cert, key) paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def timed(n: int, call: Callable[[], httpx.Response], warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        call().raise_for_status()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call().raise_for_status()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def getter(client: httpx.Client, url: str, **kwargs: Any) -> Callable[[], httpx.Response]:
    return lambda: client.get(url, **kwargs)


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="ahp-bench-"))
    ca, cert, key = make_pki(tmp)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    servers = [
        multiprocessing.Process(target=serve, args=(queue, None, None), daemon=True),
        multiprocessing.Process(target=serve, args=(queue, str(cert), str(key)), daemon=True),
    ]
    servers[0].start()
    http_port = queue.get(timeout=10)
    servers[1].start()
    https_port = queue.get(timeout=10)

    rules = [
        ProxyRule(
            name="bench",
            hosts=[HOSTNAME, "plain.local"],
            headers={"Authorization": "Bearer {{ bench-token.value }}"},
        )
    ]
    proxy = CredentialProxy(
        rules,
        upstream_overrides={
            "plain.local": f"http://127.0.0.1:{http_port}",
            HOSTNAME: f"https://127.0.0.1:{https_port}",
        },
        secret_lookup={"bench-token": {"value": "bench-secret"}}.__getitem__,
        state_dir=tmp / "state",
        upstream_ca_files=[ca],
    )
    started = time.perf_counter()
    with proxy:
        start_s = time.perf_counter() - started
        trust_proxy = ssl.create_default_context(cafile=str(proxy.ca_cert))
        # Direct HTTPS: the client resolves bench.local to the local server by connecting to
        # 127.0.0.1 and sending SNI/Host bench.local, verified against the throwaway CA.
        trust_direct = ssl.create_default_context(cafile=str(ca))
        n = args.requests
        results: list[tuple[str, str, list[float], list[float]]] = []
        cases = [
            ("HTTP", f"http://127.0.0.1:{http_port}/", "http://plain.local/", None, None),
            (
                "HTTPS",
                f"https://127.0.0.1:{https_port}/",
                f"https://{HOSTNAME}/",
                trust_direct,
                trust_proxy,
            ),
        ]
        for label, direct_url, proxied_url, direct_verify, proxied_verify in cases:
            direct_extensions = {"sni_hostname": HOSTNAME} if label == "HTTPS" else {}
            direct_headers = {"Host": HOSTNAME} if label == "HTTPS" else {}
            for mode in ("keep-alive", "new connection"):
                # No keep-alive pool: every request opens (and closes) its own connection.
                limits = httpx.Limits(
                    max_keepalive_connections=0 if mode == "new connection" else 20
                )
                with (
                    httpx.Client(
                        verify=direct_verify or False, trust_env=False, limits=limits
                    ) as direct_client,
                    httpx.Client(
                        proxy=proxy.url_with_token,
                        verify=proxied_verify or False,
                        trust_env=False,
                        limits=limits,
                    ) as proxied_client,
                ):
                    direct = timed(
                        n,
                        getter(
                            direct_client,
                            direct_url,
                            headers=direct_headers,
                            extensions=direct_extensions,
                        ),
                    )
                    proxied = timed(n, getter(proxied_client, proxied_url))
                results.append((label, mode, direct, proxied))

    for process in servers:
        process.terminate()
        process.join()

    print(f"credential proxy latency on loopback, {n} requests each (ms)")
    print(f"proxy start (uvx + mitmdump + forwarder): {start_s:.2f} s")
    header = (
        f"{'':6} {'connection':15} {'direct med':>10} {'proxied med':>11} "
        f"{'added':>7} {'ratio':>6} {'direct p90':>10} {'proxied p90':>11}"
    )
    print(header)
    for label, mode, direct, proxied in results:
        d, p = statistics.median(direct), statistics.median(proxied)
        print(
            f"{label:6} {mode:15} {d:10.2f} {p:11.2f} {p - d:7.2f} {p / d:5.1f}x "
            f"{p90(direct):10.2f} {p90(proxied):11.2f}"
        )


if __name__ == "__main__":
    main()
