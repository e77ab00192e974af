"""Proxy rules, secret resolution, the local CA and the private config file (no proxy process)."""

from __future__ import annotations

import datetime as dt
import json
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from agent_harness_platform.errors import ConfigurationError
from agent_harness_platform.proxy import (
    CredentialProxy,
    ProxyRule,
    ensure_ca,
    host_matches,
    kitaru_secret_lookup,
    resolve_rule,
)
from agent_harness_platform.proxy.ca import write_mitmproxy_confdir
from agent_harness_platform.proxy.process import write_private_json

SECRET = "sk-live-0a1b2c3d4e5f"


def wiki_rule(**headers: str) -> ProxyRule:
    return ProxyRule(
        name="wiki",
        hosts=["wiki.local"],
        headers=headers or {"Authorization": "Bearer {{ wiki-token.value }}"},
    )


# -- host matching -----------------------------------------------------------------------


@dataclass(frozen=True)
class HostCase:
    host: str
    pattern: str
    matches: bool


HOST_CASES = [
    HostCase("wiki.local", "wiki.local", True),
    HostCase("api.wiki.local", "wiki.local", True),
    HostCase("a.b.wiki.local", "wiki.local", True),
    HostCase("WIKI.Local", "wiki.local", True),
    HostCase("wiki.local.", "wiki.local", True),
    HostCase("evilwiki.local", "wiki.local", False),
    HostCase("wiki.local.evil.test", "wiki.local", False),
    HostCase("wiki.localhost", "wiki.local", False),
    HostCase("iki.local", "wiki.local", False),
    HostCase("local", "wiki.local", False),
    HostCase("xwiki.local", "wiki.local", False),
    HostCase("wiki-local", "wiki.local", False),
]


@pytest.mark.parametrize("case", HOST_CASES, ids=lambda c: f"{c.host}~{c.pattern}")
def test_host_matching_table(case: HostCase) -> None:
    assert host_matches(case.host, case.pattern) is case.matches
    assert wiki_rule().matches(case.host) is case.matches


# -- validation --------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidRule:
    label: str
    kwargs: dict[str, object]
    message: str


INVALID_RULES = [
    InvalidRule("no-hosts", {"hosts": []}, "at least one host"),
    InvalidRule("hosts-string", {"hosts": "wiki.local"}, "list of host names"),
    InvalidRule("empty-host", {"hosts": [""]}, "non-empty host"),
    InvalidRule("scheme", {"hosts": ["https://wiki.local"]}, "bare host name"),
    InvalidRule("port", {"hosts": ["wiki.local:443"]}, "bare host name"),
    InvalidRule("path", {"hosts": ["wiki.local/api"]}, "bare host name"),
    InvalidRule("wildcard", {"hosts": ["*.wiki.local"]}, "wildcard"),
    InvalidRule("double-dot", {"hosts": ["wiki..local"]}, "not a valid host name"),
    InvalidRule("leading-dash", {"hosts": ["-wiki.local"]}, "not a valid host name"),
    InvalidRule("no-headers", {"headers": {}}, "at least one header"),
    InvalidRule("header-space", {"headers": {"X Token": "v"}}, "not a valid HTTP header name"),
    InvalidRule("header-colon", {"headers": {"X-Token:": "v"}}, "not a valid HTTP header name"),
    InvalidRule("header-empty", {"headers": {"": "v"}}, "not a valid HTTP header name"),
    InvalidRule("header-host", {"headers": {"Host": "x"}}, "cannot be injected"),
    InvalidRule(
        "header-proxy-auth", {"headers": {"Proxy-Authorization": "x"}}, "cannot be injected"
    ),
    InvalidRule("header-dup", {"headers": {"X-A": "1", "x-a": "2"}}, "listed twice"),
    InvalidRule("value-newline", {"headers": {"X-A": "a\r\nHost: evil"}}, "line breaks"),
    InvalidRule("unclosed", {"headers": {"X-A": "Bearer {{ wiki-token.value"}}, "malformed"),
    InvalidRule("no-key", {"headers": {"X-A": "Bearer {{ wiki-token }}"}}, "malformed"),
    InvalidRule("empty-template", {"headers": {"X-A": "{{ }}"}}, "malformed"),
    InvalidRule("stray-close", {"headers": {"X-A": "token }}"}}, "malformed"),
    InvalidRule("bad-name", {"name": "wiki rule"}, "rule name"),
    InvalidRule("extra-field", {"scheme": "https"}, "Extra inputs"),
]


@pytest.mark.parametrize("case", INVALID_RULES, ids=lambda c: c.label)
def test_rule_validation_errors(case: InvalidRule) -> None:
    fields: dict[str, object] = {
        "name": "wiki",
        "hosts": ["wiki.local"],
        "headers": {"Authorization": "Bearer {{ wiki-token.value }}"},
    }
    fields.update(case.kwargs)
    with pytest.raises(ValidationError) as info:
        ProxyRule.model_validate(fields)
    assert case.message in str(info.value)


def test_rule_normalizes_hosts_and_is_frozen() -> None:
    rule = ProxyRule(
        name="wiki",
        hosts=["Wiki.Local.", "wiki.local", "api.example.com"],
        headers={"Authorization": "Bearer {{ wiki-token.value }}", "X-Team": "platform"},
    )
    assert rule.hosts == ("wiki.local", "api.example.com")
    assert ProxyRule.model_validate_json(rule.model_dump_json()) == rule
    assert rule.secret_refs() == [("wiki-token", "value")]
    with pytest.raises(ValidationError):
        rule.name = "other"  # type: ignore[misc]
    assert all(field.description for field in ProxyRule.model_fields.values())


def test_two_rules_for_one_host_are_refused() -> None:
    other = ProxyRule(name="other", hosts=["wiki.local"], headers={"X-A": "1"})
    with pytest.raises(ConfigurationError, match="named by two proxy rules"):
        CredentialProxy([wiki_rule(), other])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allowed_hosts": ["https://open.test"]}, "allowed host"),
        ({"upstream_overrides": {"wiki.local": "127.0.0.1:80"}}, "upstream override"),
        ({"upstream_overrides": {"wiki.local": "ftp://127.0.0.1:80"}}, "upstream override"),
        ({"upstream_overrides": {"wiki.local": "http://127.0.0.1"}}, "upstream override"),
        ({"upstream_overrides": {"wiki.local": "http://127.0.0.1:80/x"}}, "scheme://host:port"),
        ({"upstream_ca_files": [Path("/nonexistent/ca.pem")]}, "does not exist"),
    ],
)
def test_proxy_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CredentialProxy([wiki_rule()], **kwargs)  # type: ignore[arg-type]


# -- secret resolution -------------------------------------------------------------------


def test_templates_resolve_through_the_lookup() -> None:
    rule = wiki_rule(
        **{
            "Authorization": "Bearer {{ wiki-token.value }}",
            "X-Pair": "{{wiki-token.value}}:{{ other.key_2 }}",
            "X-Static": "platform",
        }
    )
    seen: list[str] = []

    def lookup(name: str) -> dict[str, str]:
        seen.append(name)
        return {"wiki-token": {"value": SECRET}, "other": {"key_2": "k2"}}[name]

    resolved = resolve_rule(rule, lookup)
    assert resolved.headers == {
        "Authorization": f"Bearer {SECRET}",
        "X-Pair": f"{SECRET}:k2",
        "X-Static": "platform",
    }
    assert seen == ["wiki-token", "other"]  # each secret read once
    assert resolved.secret_values == {SECRET, "k2"}
    assert SECRET not in repr(resolved)


@pytest.mark.parametrize(
    ("store", "needles"),
    [
        ({}, ["'wiki-token'", "'value'", "does not exist", "bash setup.sh"]),
        ({"wiki-token": {"valu": SECRET}}, ["'wiki-token'", "no key 'value'", "['valu']"]),
        ({"wiki-token": {"value": ""}}, ["'wiki-token'", "'value'", "empty"]),
        ({"wiki-token": {"value": SECRET + "\nX: y"}}, ["'wiki-token'", "line break"]),
    ],
)
def test_missing_secret_or_key_is_clear_and_leaks_nothing(
    store: dict[str, dict[str, str]], needles: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_rule(wiki_rule(), store.__getitem__)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    assert "'wiki'" in message and "'Authorization'" in message  # the rule and the header
    assert SECRET not in message


def test_kitaru_store_backs_the_default_lookup() -> None:
    name = f"ahp-test-{uuid.uuid4().hex[:8]}"
    value = f"kitaru-secret-{uuid.uuid4().hex}"
    import kitaru

    kitaru.create_secret(name, {"value": value})
    try:
        template = "Bearer {{ " + name + ".value }}"
        rule = ProxyRule(name="t", hosts=["t.local"], headers={"Authorization": template})
        assert resolve_rule(rule).headers == {"Authorization": f"Bearer {value}"}
        assert kitaru_secret_lookup(name) == {"value": value}

        missing_key = ProxyRule(
            name="t", hosts=["t.local"], headers={"X-A": f"{{{{ {name}.nope }}}}"}
        )
        with pytest.raises(ConfigurationError, match="no key 'nope'") as info:
            resolve_rule(missing_key)
        assert value not in str(info.value)

        absent = f"{name}-absent"
        with pytest.raises(KeyError):
            kitaru_secret_lookup(absent)
        missing = ProxyRule(
            name="t", hosts=["t.local"], headers={"X-A": f"{{{{ {absent}.value }}}}"}
        )
        with pytest.raises(ConfigurationError, match="does not exist"):
            resolve_rule(missing)
    finally:
        kitaru.delete_secret(name)


# -- CA and private files ----------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_is_generated_once_with_private_key(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    assert ca.cert_path.parent == tmp_path / "ca"
    assert mode(tmp_path / "ca") == 0o700
    assert mode(ca.key_path) == 0o600
    cert = ca.certificate()
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert b"PRIVATE KEY" not in ca.cert_pem()
    again = ensure_ca(tmp_path)
    assert again.cert_pem() == ca.cert_pem()


def test_ca_with_mismatched_key_is_a_configuration_error(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    other = ensure_ca(tmp_path / "other")
    ca.key_path.write_bytes(other.key_path.read_bytes())
    with pytest.raises(ConfigurationError, match="does not match"):
        ensure_ca(tmp_path)


def test_mitmproxy_confdir_holds_key_and_cert(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    confdir = tmp_path / "confdir"
    write_mitmproxy_confdir(ca, confdir)
    combined = confdir / "mitmproxy-ca.pem"
    assert mode(confdir) == 0o700 and mode(combined) == 0o600
    raw = combined.read_bytes()
    key = serialization.load_pem_private_key(raw, password=None)
    assert key.public_key() == x509.load_pem_x509_certificate(raw).public_key()
    assert (confdir / "mitmproxy-ca-cert.pem").read_bytes() == ca.cert_pem()


def test_private_json_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    write_private_json(path, {"proxy_token": "t"})
    assert mode(path) == 0o600
    assert json.loads(path.read_text()) == {"proxy_token": "t"}
    with pytest.raises(FileExistsError):
        write_private_json(path, {})
