"""Proxy rules: which hosts get which credential headers, and how secrets fill them in.

What this defends against: a worker in the sandbox learning a credential, or sending one to
a host it was not meant for. A :class:`ProxyRule` names the hosts a credential may travel to
and the headers that carry it; header values are templates (``Bearer {{ wiki-token.value }}``)
resolved on the host from Kitaru secrets, so the sandbox only ever sees the template's result
on the wire *after* the proxy added it, never the value itself.

Host matching is exact-or-subdomain on DNS labels: ``wiki.local`` covers ``api.wiki.local``
but neither ``evilwiki.local`` nor ``wiki.local.evil.test``. What this does not defend
against: a host that a rule names being malicious itself, or a compromised host machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_harness_platform._kitaru import kitaru_secret_lookup
from agent_harness_platform.errors import ConfigurationError

__all__ = [
    "ProxyRule",
    "ResolvedRule",
    "SecretLookup",
    "host_matches",
    "kitaru_secret_lookup",
    "normalize_host",
    "resolve_rule",
    "validate_host",
]

SecretLookup = Callable[[str], Mapping[str, str]]
"""Returns the key/value pairs of the named secret; raises ``KeyError`` when it does not exist."""

_TEMPLATE = re.compile(
    r"\{\{\s*(?P<secret>[A-Za-z0-9][A-Za-z0-9_.-]*)\.(?P<key>[A-Za-z0-9_-]+)\s*\}\}"
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")

# Headers that describe the connection or the proxy hop: injecting them would break framing
# or let a rule smuggle a second request, so no rule may set them.
_FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_SETUP_HINT = "`bash setup.sh` creates the secrets the stages use (wiki-token, webhook-token)"


def normalize_host(host: str) -> str:
    """Lower-case ``host`` and drop one trailing dot (``Wiki.Local.`` → ``wiki.local``)."""
    host = host.strip().lower()
    return host[:-1] if host.endswith(".") else host


def validate_host(host: str, *, what: str = "host") -> str:
    """Return ``host`` normalized, or raise :class:`ConfigurationError` saying what is wrong.

    Accepts plain DNS names and IPv4 literals; refuses schemes, ports, paths, wildcards and
    empty labels, because each of those would make matching ambiguous.
    """
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError(f"{what} must be a non-empty host name, got {host!r}")
    normalized = normalize_host(host)
    if "*" in normalized:
        raise ConfigurationError(
            f"{what} {host!r} contains a wildcard; write the parent domain instead "
            "(a rule for 'example.com' already covers 'api.example.com')"
        )
    if any(ch in normalized for ch in "/:@ \t"):
        raise ConfigurationError(
            f"{what} {host!r} is not a bare host name: drop any scheme, port, path or user "
            "(write 'wiki.local', not 'https://wiki.local:443/')"
        )
    if len(normalized) > 253 or not all(_LABEL.match(label) for label in normalized.split(".")):
        raise ConfigurationError(
            f"{what} {host!r} is not a valid host name (labels of letters, digits, '-' or '_', "
            "separated by single dots)"
        )
    return normalized


def host_matches(host: str, pattern: str) -> bool:
    """Whether ``host`` is ``pattern`` or a subdomain of it, compared label by label."""
    host = normalize_host(host)
    pattern = normalize_host(pattern)
    return bool(pattern) and (host == pattern or host.endswith("." + pattern))


class ProxyRule(BaseModel):
    """Inject ``headers`` into every request the sandbox sends to one of ``hosts``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        description="Short identifier of the rule, used in logs and error messages (e.g. 'wiki')."
    )
    hosts: Sequence[str] = Field(
        description=(
            "Host names the credential may be sent to. Each matches itself and its "
            "subdomains: 'wiki.local' covers 'api.wiki.local' but not 'evilwiki.local'. "
            "Stored lower-cased, without duplicates, as a tuple."
        )
    )
    headers: dict[str, str] = Field(
        description=(
            "Header name to value template. '{{ secret-name.key }}' is replaced by that key "
            "of that Kitaru secret on the host; the header overwrites anything the worker sent."
        )
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError(
                f"rule name {value!r} must be 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("hosts", mode="before")
    @classmethod
    def _check_hosts(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            raise ValueError("hosts must be a list of host names, not a single string")
        items = list(value) if isinstance(value, list | tuple | set | frozenset) else None
        if not items:
            raise ValueError(
                "hosts must list at least one host name; an empty rule matches nothing"
            )
        normalized: list[str] = []
        for item in items:
            try:
                host = validate_host(item)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
            if host not in normalized:
                normalized.append(host)
        return tuple(normalized)

    @field_validator("hosts")
    @classmethod
    def _hosts_as_tuple(cls, value: Sequence[str]) -> tuple[str, ...]:
        return tuple(value)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError(
                "headers must name at least one header to inject; to let a host through "
                "without credentials, list it in the allowed hosts instead"
            )
        seen: set[str] = set()
        for name, template in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            lowered = name.lower()
            if lowered in _FORBIDDEN_HEADERS:
                raise ValueError(
                    f"header {name!r} describes the connection or the proxy hop and cannot "
                    "be injected"
                )
            if lowered in seen:
                raise ValueError(f"header {name!r} is listed twice (header names ignore case)")
            seen.add(lowered)
            _check_template(name, template)
        return value

    def matches(self, host: str) -> bool:
        """Whether this rule applies to requests for ``host``."""
        return any(host_matches(host, pattern) for pattern in self.hosts)

    def secret_refs(self) -> list[tuple[str, str]]:
        """The ``(secret, key)`` pairs the header templates refer to, in order."""
        return [
            (m["secret"], m["key"])
            for template in self.headers.values()
            for m in _TEMPLATE.finditer(template)
        ]


def _check_template(header: str, template: str) -> None:
    if not isinstance(template, str):
        raise ValueError(f"header {header!r}: the value must be a string template")
    if any(ch in template for ch in "\r\n\0"):
        raise ValueError(f"header {header!r}: the value must not contain line breaks or NUL")
    rest = _TEMPLATE.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise ValueError(
            f"header {header!r}: malformed template {template!r}; write "
            "'{{ secret-name.key }}', e.g. 'Bearer {{ wiki-token.value }}'"
        )


@dataclass(frozen=True)
class ResolvedRule:
    """A rule with its templates filled in. Lives on the host and in the proxy process only.

    ``headers`` is kept out of ``repr`` so that logging the object never prints a secret.
    """

    name: str
    hosts: tuple[str, ...]
    headers: dict[str, str] = field(repr=False)
    secret_values: frozenset[str] = field(repr=False, default=frozenset())
    """Every substituted secret value, so log lines can be checked and redacted."""


def resolve_rule(rule: ProxyRule, lookup: SecretLookup | None = None) -> ResolvedRule:
    """Fill in ``rule``'s header templates from secrets.

    ``lookup`` defaults to :func:`kitaru_secret_lookup`. A missing secret or key, or an
    unusable value, is a :class:`ConfigurationError` naming the rule, the header, the secret
    and the key; it never contains a value.
    """
    lookup = lookup or kitaru_secret_lookup
    cache: dict[str, Mapping[str, str]] = {}
    used: set[str] = set()

    def fill(header: str, match: re.Match[str]) -> str:
        secret, key = match["secret"], match["key"]
        where = f"(rule {rule.name!r}, header {header!r})"
        if secret not in cache:
            try:
                cache[secret] = lookup(secret)
            except KeyError:
                raise ConfigurationError(
                    f"secret {secret!r} (key {key!r}) does not exist {where}. Create it with "
                    f"`kitaru secrets set {secret} --{key}=...`; {_SETUP_HINT}."
                ) from None
        values = cache[secret]
        value = values.get(key)
        if value is None:
            raise ConfigurationError(
                f"secret {secret!r} has no key {key!r} {where}; its keys are "
                f"{sorted(values)}. Set it with `kitaru secrets set {secret} --{key}=...`."
            )
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"secret {secret!r} key {key!r} is empty {where}")
        if any(ch in value for ch in "\r\n\0"):
            raise ConfigurationError(
                f"secret {secret!r} key {key!r} contains a line break or NUL {where}; "
                "it cannot go into an HTTP header"
            )
        used.add(value)
        return value

    headers: dict[str, str] = {}
    for name, template in rule.headers.items():
        headers[name] = _TEMPLATE.sub(partial(fill, name), template)
    return ResolvedRule(
        name=rule.name, hosts=tuple(rule.hosts), headers=headers, secret_values=frozenset(used)
    )
