"""What every isolated backend shows inside: paths, environment, and the proxy forwarder."""

from __future__ import annotations

import os

from .base import SandboxConfig

__all__ = [
    "PROXY_CA",
    "PROXY_SOCKET",
    "SANDBOX_PATH",
    "WORKSPACE",
    "forwarder_check",
    "forwarder_command",
    "sandbox_env",
]

WORKSPACE = "/workspace"
"""Where the workspace appears inside, and the shell's first working directory."""

PROXY_SOCKET = "/run/ahp/proxy.sock"
"""Where the proxy's Unix socket is mounted inside."""

PROXY_CA = "/etc/ahp/proxy-ca.pem"
"""Where the proxy's CA certificate is mounted inside (read-only)."""

SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` inside."""


def sandbox_env(config: SandboxConfig) -> dict[str, str]:
    """The complete environment inside: an allow-list, then config, then proxy settings."""
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": WORKSPACE,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "TERM": "dumb",
        **config.env,
    }
    if config.proxy is not None:
        env.update(config.proxy.env)
        if config.proxy.ca_cert is not None:
            for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
                env[name] = PROXY_CA
    return env


def forwarder_command(port: int) -> str:
    """socat from ``127.0.0.1:port`` inside to the mounted proxy socket (one fork per client)."""
    return (
        f"socat TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:{PROXY_SOCKET}"
        " </dev/null >/dev/null 2>&1"
    )


def forwarder_check(port: int) -> str:
    """Bash run at start-up: wait until the forwarder listens, or fail the start (exit 97)."""
    needle = f" 0100007F:{port:04X} 00000000:0000 0A "
    return (
        f"__ahp_i=0; until grep -qF '{needle}' /proc/net/tcp; do "
        "if (( ++__ahp_i > 500 )); then "
        f"printf 'the proxy forwarder is not listening on 127.0.0.1:{port}\\n' >&9; exit 97; fi; "
        "sleep 0.01; done; unset __ahp_i"
    )
