"""``python -m agent_harness_platform.setup_state``: the state ``setup.sh`` prepares.

Idempotent: the demo secrets ``wiki-token`` and ``webhook-token`` are created with random
values only when missing (existing values are never replaced or printed), and the credential
proxy's local CA is generated only when absent.
"""

from __future__ import annotations

import secrets
import sys

DEMO_SECRETS = ("wiki-token", "webhook-token")
"""Kitaru secrets the demo services authenticate with (key ``value``)."""


def ensure_demo_secrets() -> list[str]:
    """Create any missing demo secret with a random value; return the names created."""
    import kitaru

    existing = {getattr(s, "name", s) for s in kitaru.list_secrets()}
    created = []
    for name in DEMO_SECRETS:
        if name not in existing:
            kitaru.create_secret(name, {"value": secrets.token_urlsafe(24)})
            created.append(name)
    return created


def main() -> int:
    created = ensure_demo_secrets()
    for name in DEMO_SECRETS:
        state = "created" if name in created else "present"
        print(f"[setup] Kitaru secret {name}: {state}")
    try:
        from .proxy.ca import ensure_ca
    except ImportError:  # the proxy rail is optional in a trimmed install
        return 0
    ca = ensure_ca()
    print(f"[setup] proxy CA certificate: {ca.cert_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
