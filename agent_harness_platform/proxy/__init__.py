"""The credential proxy: a separate process that holds the secrets.

Sandboxes reach it through a Unix socket and the per-run proxy token; it injects the
:class:`ProxyRule` headers for matching hosts, denies every other host unless allowed, and
intercepts HTTPS with a locally generated CA that only sandboxes trust.
"""

from agent_harness_platform.proxy.ca import CertificateAuthority, default_state_dir, ensure_ca
from agent_harness_platform.proxy.process import (
    MITMPROXY_SPEC,
    PROXY_USER,
    SANDBOX_PROXY_PORT,
    CredentialProxy,
)
from agent_harness_platform.proxy.rules import (
    ProxyRule,
    ResolvedRule,
    SecretLookup,
    host_matches,
    kitaru_secret_lookup,
    resolve_rule,
)

__all__ = [
    "MITMPROXY_SPEC",
    "PROXY_USER",
    "SANDBOX_PROXY_PORT",
    "CertificateAuthority",
    "CredentialProxy",
    "ProxyRule",
    "ResolvedRule",
    "SecretLookup",
    "default_state_dir",
    "ensure_ca",
    "host_matches",
    "kitaru_secret_lookup",
    "resolve_rule",
]
