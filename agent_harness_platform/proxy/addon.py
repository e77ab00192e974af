"""mitmproxy addon: the credential proxy's enforcement point.

Loaded by ``mitmdump -s addon.py --set ahp_config=<file>`` in a separate process that runs
from mitmproxy's own environment, so this module imports only the standard library and
mitmproxy. The host writes the config file (0600, in a 0700 directory) with the resolved
headers, the per-run proxy token, the allowed hosts and the upstream overrides; the addon
reads it once and deletes it.

What it defends against: a sandboxed worker that (1) uses the proxy without the per-run token
(407), (2) sends a credential to a host no rule names, including lookalikes such as
``evilwiki.local`` or ``wiki.local.evil.test`` (403, nothing injected), (3) forges its own
``Authorization`` (the rule's header overwrites it), or (4) reaches any host that is neither
ruled nor allowed, over HTTP, HTTPS (CONNECT) or a raw tunnel (403, and the upstream
connection is refused as a second check). Every decision is printed as one ``[proxy]`` line
on stdout, with header names and hosts only, never values.

Responses are scrubbed: a secret value an upstream reflects back (a debug echo, an error page
quoting the token) is replaced before the sandbox sees it, in headers and in bodies up to the
1 MiB streaming threshold.

What it does not defend against: a host that a rule names misusing the credential it is
sent, reflecting it transformed (encoded, split) or in a streamed body larger than 1 MiB, or a
process on the host that can read this process's memory.
"""

# No `from __future__ import annotations`: mitmproxy loads this file without registering it in
# sys.modules, and dataclasses cannot resolve string annotations of such a module.
import base64
import binascii
import contextlib
import hmac
import json
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import server_hooks

PROXY_USER = "ahp"
_REALM = "ahp-credential-proxy"
_REDACTED = b"[redacted by ahp proxy]"
_MIN_REDACT = 6  # shorter values would mangle unrelated bytes


def _normalize(host: str) -> str:
    host = host.strip().lower()
    return host[:-1] if host.endswith(".") else host


def _host_matches(host: str, pattern: str) -> bool:
    # Must agree with agent_harness_platform.proxy.rules.host_matches (kept in sync by tests
    # that run the same lookalike table through the real proxy).
    return host == pattern or host.endswith("." + pattern)


def _printable(text: str, *, spaces: bool = False) -> str:
    """Hosts come from the client: keep them on one line and printable in our logs."""
    return "".join(ch if ch.isprintable() and (spaces or ch != " ") else "?" for ch in text)[:300]


def _authority_host(authority: str | None) -> str | None:
    """``example.com:443`` → ``example.com``; ``[::1]:80`` → ``::1``; None stays None."""
    if not authority:
        return None
    authority = authority.strip()
    if authority.startswith("["):
        return _normalize(authority[1 : authority.find("]")] if "]" in authority else authority)
    name, sep, port = authority.rpartition(":")
    return _normalize(name if sep and port.isdigit() else authority)


def _say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


@dataclass(frozen=True)
class _Rule:
    name: str
    hosts: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class _Policy:
    token: str
    rules: tuple[_Rule, ...]
    allowed: tuple[str, ...]
    overrides: dict[str, _Target]
    targets: frozenset[tuple[str, int]]
    redact: tuple[bytes, ...]

    @classmethod
    def from_json(cls, data: dict) -> "_Policy":
        token = data["proxy_token"]
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError("proxy_token is missing or too short")
        rules = tuple(
            _Rule(
                name=str(rule["name"]),
                hosts=tuple(_normalize(h) for h in rule["hosts"]),
                headers=tuple((str(k), str(v)) for k, v in rule["headers"].items()),
            )
            for rule in data["rules"]
        )
        overrides = {
            _normalize(host): _Target(str(t["scheme"]), str(t["host"]), int(t["port"]))
            for host, t in data.get("upstream_overrides", {}).items()
        }
        allowed = tuple(_normalize(h) for h in data.get("allowed_hosts", []))
        targets = frozenset((t.host, t.port) for t in overrides.values())
        # Longest first, so a value containing another is replaced whole.
        redact = tuple(
            sorted(
                {str(v).encode() for v in data.get("redact", []) if len(str(v)) >= _MIN_REDACT},
                key=len,
                reverse=True,
            )
        )
        return cls(
            token=token,
            rules=rules,
            allowed=allowed,
            overrides=overrides,
            targets=targets,
            redact=redact,
        )

    def scrub(self, data: bytes) -> tuple[bytes, int]:
        """``data`` with every secret value replaced, and how many were replaced."""
        count = 0
        for value in self.redact:
            if value in data:
                count += data.count(value)
                data = data.replace(value, _REDACTED)
        return data, count

    def rule_for(self, host: str) -> _Rule | None:
        """The rule whose matching host pattern is the longest (the most specific)."""
        best: tuple[int, _Rule] | None = None
        for rule in self.rules:
            for pattern in rule.hosts:
                if _host_matches(host, pattern) and (best is None or len(pattern) > best[0]):
                    best = (len(pattern), rule)
        return best[1] if best else None

    def is_allowed(self, host: str) -> bool:
        return any(_host_matches(host, pattern) for pattern in self.allowed)

    def permits(self, host: str) -> bool:
        return self.rule_for(host) is not None or self.is_allowed(host)

    def token_ok(self, header_value: str) -> bool:
        scheme, _, encoded = header_value.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # Compare both parts every time so timing does not reveal which one was wrong.
        user_ok = hmac.compare_digest(user.encode(), PROXY_USER.encode())
        token_ok = hmac.compare_digest(password.encode(), self.token.encode())
        return bool(sep) and user_ok and token_ok


def _text_response(status: int, text: str, headers: dict[str, str] | None = None) -> http.Response:
    all_headers = {"Content-Type": "text/plain; charset=utf-8", "X-AHP-Proxy": "denied"}
    all_headers.update(headers or {})
    return http.Response.make(status, text.encode("utf-8"), all_headers)


def _watch_owner(pid: int) -> None:
    """Exit when the process that owns this proxy is gone (even after a ``kill -9``, which
    gives it no chance to stop us): a proxy holding secrets must not outlive its run."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                # The owner read our stdout: with it gone the pipe is broken, so the notice
                # is best effort and must not stop the exit.
                with contextlib.suppress(OSError, ValueError):
                    _say("[proxy] owner process is gone; stopping the credential proxy")
                os._exit(0)
            except PermissionError:
                continue

    threading.Thread(target=watch, name="ahp-owner-watch", daemon=True).start()


class CredentialInjector:
    """The addon object mitmproxy calls. One instance per proxy process."""

    def __init__(self) -> None:
        self.policy: _Policy | None = None
        # Client connections that proved the token on CONNECT: requests inside that tunnel
        # carry no Proxy-Authorization of their own.
        self._tunnels: weakref.WeakSet = weakref.WeakSet()
        # (client connection id, override address) -> the host the sandbox asked for, so the
        # upstream TLS handshake names and verifies that host rather than an IP.
        self._server_names: dict[tuple[str, tuple[str, int]], str] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            "ahp_config",
            str,
            "",
            "Path of the JSON config the host wrote for this run; deleted after reading.",
        )

    def configure(self, updated: set[str]) -> None:
        if "ahp_config" not in updated:
            return
        path = ctx.options.ahp_config
        if not path:
            self.policy = None
            return
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            self.policy = _Policy.from_json(data)
            owner = data.get("owner_pid")
            if isinstance(owner, int) and owner > 1:
                _watch_owner(owner)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # No details: the file holds secrets and a parser error could quote it.
            raise exceptions.OptionsError(
                f"ahp credential proxy: cannot load its config ({type(exc).__name__})"
            ) from None
        finally:
            # Secrets should live on disk for as short a time as possible.
            with contextlib.suppress(OSError):
                os.unlink(path)

    def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        addrs = proxyserver.listen_addrs() if proxyserver else []
        port = addrs[0][1] if addrs else ctx.options.listen_port
        hosts = [h for rule in self.policy.rules for h in rule.hosts] if self.policy else []
        _say(f"[proxy] Started credential proxy on 127.0.0.1:{port} (injecting for hosts={hosts})")

    # -- decisions -----------------------------------------------------------------------

    def _reject_token(self, flow: http.HTTPFlow) -> None:
        _say("[proxy] rejected request: missing or wrong proxy token")
        flow.response = _text_response(
            407,
            "ahp credential proxy: missing or wrong proxy token. Use the HTTP_PROXY / "
            "HTTPS_PROXY settings of this sandbox, which carry it.\n",
            {"Proxy-Authenticate": f'Basic realm="{_REALM}"'},
        )

    def _deny_host(self, flow: http.HTTPFlow, host: str, reason: str | None = None) -> None:
        shown = _printable(host)
        if reason is None:
            _say(f"[proxy] denied host={shown} (no rule)")
            text = (
                f"ahp credential proxy: request to host '{shown}' denied: no proxy rule covers "
                "this host and it is not an allowed host. Ask the operator to add a proxy rule "
                "or an allowed host for it to the agent profile.\n"
            )
        else:
            reason = _printable(reason, spaces=True)
            _say(f"[proxy] denied host={shown} ({reason})")
            text = f"ahp credential proxy: request to host '{shown}' denied: {reason}.\n"
        flow.response = _text_response(403, text)
        # Clients that only show the status line of a failed CONNECT still see why.
        flow.response.reason = (
            "Forbidden (no proxy rule for host)" if reason is None else "Forbidden"
        )

    def http_connect(self, flow: http.HTTPFlow) -> None:
        policy = self.policy
        header = flow.request.headers.get("Proxy-Authorization", "")
        if policy is None or not policy.token_ok(header):
            self._reject_token(flow)
            return
        del flow.request.headers["Proxy-Authorization"]
        host = _normalize(flow.request.host)
        if not policy.permits(host):
            self._deny_host(flow, host)
            return
        self._tunnels.add(flow.client_conn)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        policy = self.policy
        header = flow.request.headers.get("Proxy-Authorization", "")
        # Never forward our token, whoever the request is for.
        flow.request.headers.pop("Proxy-Authorization", None)
        in_tunnel = flow.client_conn in self._tunnels
        if policy is None or not (in_tunnel or policy.token_ok(header)):
            self._reject_token(flow)
            return
        # Inside a tunnel mitmproxy routes by the CONNECT target; the Host header may name
        # another site. Refuse that mismatch: on a shared front end (CDN) the Host header
        # picks the origin, so it would deliver a rule's credential to somebody else.
        host = _normalize(flow.request.host)
        named = _authority_host(flow.request.host_header)
        if named is not None and named != host:
            self._deny_host(flow, named, reason=f"Host header does not match destination {host}")
            return
        rule = policy.rule_for(host)
        if rule is None:
            if policy.is_allowed(host):
                _say(f"[proxy] allowed host={_printable(host)} (no rule; passed without injection)")
            else:
                self._deny_host(flow, host)
                return
        else:
            for name, value in rule.headers:
                # Assignment replaces every existing header of that name (case-insensitive),
                # so a worker's forged Authorization never reaches the upstream.
                flow.request.headers[name] = value
            names = [name for name, _ in rule.headers]
            _say(f"[proxy] injected headers for {_printable(host)}: {names}")
        flow.metadata["ahp_host"] = host
        target = policy.overrides.get(host)
        if target is not None:
            self._route(flow, host, target)

    # -- responses: an upstream must not hand a credential back to the sandbox --------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        policy = self.policy
        if policy is None or not policy.redact or flow.response is None:
            return
        headers = flow.response.headers
        replaced = 0
        for name in list(headers.keys()):
            values = headers.get_all(name)
            scrubbed = [policy.scrub(v.encode("utf-8", "surrogateescape")) for v in values]
            if any(count for _, count in scrubbed):
                replaced += sum(count for _, count in scrubbed)
                headers.set_all(name, [s.decode("utf-8", "surrogateescape") for s, _ in scrubbed])
        self._report_redaction(flow, replaced)

    def response(self, flow: http.HTTPFlow) -> None:
        policy = self.policy
        if policy is None or not policy.redact or flow.response is None:
            return
        if flow.response.stream:
            return  # large bodies stream through unscanned (see the module docstring)
        content = flow.response.get_content(strict=False)
        if not content:
            return
        scrubbed, count = policy.scrub(content)
        if count:
            flow.response.set_content(scrubbed)
        self._report_redaction(flow, count)

    def _report_redaction(self, flow: http.HTTPFlow, count: int) -> None:
        if count:
            host = _printable(str(flow.metadata.get("ahp_host", flow.request.host)))
            _say(f"[proxy] redacted {count} credential value(s) from the response of {host}")

    def _route(self, flow: http.HTTPFlow, host: str, target: _Target) -> None:
        """Send the request to ``target`` (like a hosts-file entry), keeping its Host header.

        The scheme follows the target too: https://wiki.local from the sandbox may reach a
        plain-HTTP mock. Upstream connections are keyed by the target address, so they are
        reused across requests as usual.
        """
        named = flow.request.host_header
        flow.request.scheme = target.scheme
        flow.request.host = target.host  # mitmproxy also rewrites Host here; restored below
        flow.request.port = target.port
        flow.request.host_header = named or host
        if target.scheme == "https":
            self._server_names[(flow.client_conn.id, (target.host, target.port))] = host

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Last check before any upstream socket is opened.

        Only override targets and permitted hosts are connected to (requests for anything
        else were answered already; this catches whatever got past that, e.g. raw tunnels).
        For an HTTPS override target, the TLS server name is set back to the host the
        sandbox asked for, so the upstream certificate is verified against that name.
        """
        policy = self.policy
        address = data.server.address
        if address is None:
            return
        if policy is not None and (address[0], address[1]) in policy.targets:
            name = self._server_names.get((data.client.id, (address[0], address[1])))
            if name is not None and data.server.tls:
                data.server.sni = name
            return
        host = _normalize(str(address[0]))
        if policy is None or not policy.permits(host):
            data.server.error = "ahp credential proxy: upstream host not permitted"
            _say(f"[proxy] denied host={_printable(host)} (no rule; upstream connection refused)")

    def client_disconnected(self, client: Any) -> None:
        for key in [k for k in self._server_names if k[0] == client.id]:
            del self._server_names[key]


addons = [CredentialInjector()]
