"""The small base of the services rail: :class:`Service`, :class:`ServiceRegistry`,
:class:`ServiceContext` and the typed failure a handler raises.

A service is a host-side action with a typed contract: a Pydantic args model (what the model
may send; every field described, extra fields forbidden), a result model (what comes back), a
one-line summary (shown to the model) and a handler that does the work with credentials the
sandbox never sees. Teams extend a registry with their own :class:`Service` values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from agent_harness_platform._kitaru import kitaru_secret_lookup
from agent_harness_platform.errors import ConfigurationError, HarnessRuntimeError

__all__ = [
    "Service",
    "ServiceCallError",
    "ServiceContext",
    "ServiceErrorCode",
    "ServiceRegistry",
    "idempotency_key",
    "kitaru_secret_lookup",
]

logger = logging.getLogger("agent_harness_platform.services")

ArgsT = TypeVar("ArgsT", bound=BaseModel)
ResultT = TypeVar("ResultT", bound=BaseModel)

ServiceErrorCode = Literal["http_error", "unreachable", "timeout", "missing_secret", "bad_response"]
"""Machine-readable failure codes a handler reports (and the model reads)."""

_SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ServiceCallError(HarnessRuntimeError):
    """A handler's typed failure: the service answered badly, or could not be reached.

    ``exec_service`` turns it into an ``{"ok": false, "error": {...}}`` result for the model.
    The message is shown to the model and logged, so it never contains a secret value.
    """

    def __init__(self, message: str, *, code: ServiceErrorCode, status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ServiceContext:
    """What handlers need on the host, built once per run by the caller."""

    wiki_url: str
    """Base URL of the wiki service, e.g. ``http://127.0.0.1:8765``."""
    webhook_url: str
    """Base URL of the webhook service (may be the same server as the wiki)."""
    run_key: str
    """Stable id of the run; part of every idempotency key, so a replay never posts twice."""
    secret_lookup: Callable[[str], Mapping[str, str]] = kitaru_secret_lookup
    """Returns the key/value pairs of a named secret; raises when it does not exist."""
    timeout: float = 10.0
    """Seconds for each HTTP request (connect, read, write) a handler makes."""

    def __post_init__(self) -> None:
        for field_name in ("wiki_url", "webhook_url"):
            url = getattr(self, field_name)
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"ServiceContext.{field_name}={url!r} is not an http(s) URL; "
                    "pass the base URL of the service, e.g. 'http://127.0.0.1:8765'."
                )
        if not self.run_key:
            raise ConfigurationError(
                "ServiceContext.run_key is empty; pass a stable id of the run (it keys "
                "idempotent calls such as publish_summary)."
            )
        if not self.timeout > 0:
            raise ConfigurationError(f"ServiceContext.timeout={self.timeout} must be > 0.")

    def secret(self, name: str, key: str = "value") -> str:
        """The value of ``key`` in secret ``name``, or a ``missing_secret`` failure.

        Any lookup failure counts as missing: without the credential the call cannot be made.
        """
        hint = f"an operator must create it: `kitaru secrets set {name} --{key}=...`"
        try:
            values = self.secret_lookup(name)
        except Exception as exc:
            logger.warning("[services] secret %r unavailable (%s)", name, type(exc).__name__)
            raise ServiceCallError(
                f"The secret {name!r} is missing on the host; {hint}.", code="missing_secret"
            ) from exc
        value = values.get(key)
        if not value:
            raise ServiceCallError(
                f"The secret {name!r} has no key {key!r}; {hint}.", code="missing_secret"
            )
        return value


@dataclass(frozen=True)
class Service(Generic[ArgsT, ResultT]):
    """One typed service. Construction checks the contract, so mistakes surface at import."""

    name: str
    """What the model passes as ``service_name``: lowercase letters, digits, underscores."""
    summary: str
    """One line telling the model what the service does; shown in the tool description."""
    args_model: type[ArgsT]
    """Arguments; every field described, ``extra="forbid"``."""
    result_model: type[ResultT]
    """What the handler returns; dumped to JSON for the model."""
    handler: Callable[[ArgsT, ServiceContext], ResultT]
    """Does the work on the host; raises :class:`ServiceCallError` for expected failures."""
    describe_args: Callable[[ArgsT], str] | None = None
    """For the ``[services]`` log line, e.g. ``topic='durability'``. Never log secrets."""
    describe_result: Callable[[ResultT], str] | None = None
    """For the ``[services]`` log line, e.g. ``2 snippets``."""

    def __post_init__(self) -> None:
        where = f"service {self.name!r}"
        if not _SERVICE_NAME_RE.match(self.name):
            raise ConfigurationError(
                f"{where}: the name must be 1-64 lowercase letters, digits and underscores, "
                "starting with a letter."
            )
        if not self.summary.strip() or "\n" in self.summary.strip():
            raise ConfigurationError(f"{where}: the summary must be one non-empty line.")
        if self.args_model.model_config.get("extra") != "forbid":
            raise ConfigurationError(
                f"{where}: {self.args_model.__name__} must set "
                "model_config = ConfigDict(extra='forbid') so unknown arguments are refused."
            )
        undescribed = [
            field_name
            for field_name, info in self.args_model.model_fields.items()
            if not info.description
        ]
        if undescribed:
            raise ConfigurationError(
                f"{where}: describe every argument of {self.args_model.__name__} with "
                f"Field(description=...); missing for {', '.join(undescribed)}."
            )


class ServiceRegistry:
    """Services by name. Extensible: ``registry.register(Service(...))``."""

    def __init__(self, services: Iterable[Service[Any, Any]] = ()) -> None:
        self._services: dict[str, Service[Any, Any]] = {}
        for service in services:
            self.register(service)

    def register(self, service: Service[Any, Any]) -> Service[Any, Any]:
        """Add ``service``; a second service with the same name is a configuration error."""
        if service.name in self._services:
            raise ConfigurationError(
                f"A service named {service.name!r} is already registered; pick another name."
            )
        self._services[service.name] = service
        return service

    def get(self, name: str) -> Service[Any, Any] | None:
        """The service called ``name``, or None."""
        return self._services.get(name)

    def names(self) -> list[str]:
        """Registered service names, sorted."""
        return sorted(self._services)

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def __iter__(self) -> Iterator[Service[Any, Any]]:
        return iter([self._services[name] for name in self.names()])

    def __len__(self) -> int:
        return len(self._services)


def idempotency_key(run_key: str, service_name: str, args: BaseModel) -> str:
    """sha256 hex of the run key, the service name and the canonical JSON of the args.

    The same call in the same run (a retry, a replay, a resumed run) gets the same key, so the
    receiving service can answer it without acting twice.
    """
    canonical = json.dumps(
        [run_key, service_name, args.model_dump(mode="json")],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
