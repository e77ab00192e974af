"""The local certificate authority the credential proxy uses to intercept HTTPS.

What this defends against: the proxy needs to read and rewrite requests inside TLS to inject
headers, so it mints per-host certificates signed by this CA; only sandboxes are told to trust
it (through its certificate, never its key). The key stays on the host, mode 0600 inside a
0700 directory, and is copied only into the proxy's private per-run config directory.

What it does not defend against: anyone who can read the host user's files can read the key
and impersonate any site to a sandbox. The CA is never added to the host's trust store.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from agent_harness_platform.errors import ConfigurationError

__all__ = [
    "CA_CERT_NAME",
    "CA_KEY_NAME",
    "CertificateAuthority",
    "default_state_dir",
    "ensure_ca",
    "write_mitmproxy_confdir",
]

logger = logging.getLogger("agent_harness_platform.proxy")

CA_CERT_NAME = "ca-cert.pem"
CA_KEY_NAME = "ca-key.pem"
_COMMON_NAME = "Agent Harness Platform local proxy CA"
_VALIDITY = dt.timedelta(days=3650)
_RENEW_BEFORE = dt.timedelta(days=30)


def default_state_dir() -> Path:
    """Where the platform keeps state: ``$AHP_HOME``, else ``$XDG_DATA_HOME/agent-harness``,
    else ``~/.local/share/agent-harness``."""
    if home := os.environ.get("AHP_HOME"):
        return Path(home).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "agent-harness"


@dataclass(frozen=True)
class CertificateAuthority:
    """Paths of the CA certificate (public, what sandboxes trust) and its private key."""

    cert_path: Path
    key_path: Path

    def cert_pem(self) -> bytes:
        """The CA certificate in PEM form."""
        return self.cert_path.read_bytes()

    def certificate(self) -> x509.Certificate:
        """The parsed CA certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem())


def ensure_ca(state_dir: Path | None = None) -> CertificateAuthority:
    """Return the CA under ``<state_dir>/ca``, generating it on first use.

    Safe to call from several processes at once (a file lock serialises generation). An
    expired or nearly expired CA is replaced; a key that does not match its certificate is a
    :class:`ConfigurationError` naming the directory to delete.
    """
    ca_dir = (state_dir or default_state_dir()) / "ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    ca = CertificateAuthority(cert_path=ca_dir / CA_CERT_NAME, key_path=ca_dir / CA_KEY_NAME)
    with open(ca_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ca.cert_path.exists() and ca.key_path.exists():
            if _usable(ca):
                return ca
            logger.info("[proxy] CA in %s expires soon; generating a new one", ca_dir)
        _generate(ca)
        logger.info("[proxy] Generated local proxy CA in %s", ca_dir)
    return ca


def _usable(ca: CertificateAuthority) -> bool:
    try:
        cert = ca.certificate()
        key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"the proxy CA in {ca.cert_path.parent} is unreadable ({type(exc).__name__}); "
            "delete that directory and run `bash setup.sh` to generate a new one"
        ) from None
    if key.public_key() != cert.public_key():
        raise ConfigurationError(
            f"the proxy CA key in {ca.key_path} does not match its certificate; delete "
            f"{ca.cert_path.parent} and run `bash setup.sh` to generate a new one"
        )
    return cert.not_valid_after_utc - _RENEW_BEFORE > dt.datetime.now(dt.UTC)


def _generate(ca: CertificateAuthority) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, _COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agent-harness-platform"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    # Key first, then the certificate: a reader never sees a new cert with an old key.
    _write_atomic(ca.key_path, key_pem, 0o600)
    _write_atomic(ca.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_mitmproxy_confdir(ca: CertificateAuthority, confdir: Path) -> None:
    """Prepare a mitmproxy ``confdir`` that uses this CA instead of generating its own.

    mitmproxy loads ``mitmproxy-ca.pem`` (key followed by certificate) when it exists; the
    file holds the key, so it is written 0600 and ``confdir`` is made 0700.
    """
    confdir.mkdir(parents=True, exist_ok=True)
    os.chmod(confdir, 0o700)
    _write_atomic(confdir / "mitmproxy-ca.pem", ca.key_path.read_bytes() + ca.cert_pem(), 0o600)
    _write_atomic(confdir / "mitmproxy-ca-cert.pem", ca.cert_pem(), 0o644)
