"""The ``exec_service`` tool: the model's one door to the typed services.

What it defends against: a model calling a service its profile does not allow, sending
arguments outside a service's contract (wrong types, unknown fields, oversized content), and
seeing credentials. The allow-list is fixed when the tool is built; anything not on it is
refused before validation; arguments are validated against the args model before the handler
(and the ``before_call`` hook, e.g. an approval point) runs; handlers read secrets on the host
and only the result model's fields come back. Refusals are ``ModelRetry`` messages naming
fields and rules, never echoing values.

What it does not defend against: a handler that misbehaves, or a service that is allowed but
misused within its contract (what to post is the model's choice; gate it with an approval
point).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_ai import ModelRetry, Tool

from agent_harness_platform.errors import ApprovalRejected, ConfigurationError
from agent_harness_platform.services.registry import (
    Service,
    ServiceCallError,
    ServiceContext,
    ServiceRegistry,
)

__all__ = [
    "EXEC_SERVICE_TOOL_NAME",
    "check_services",
    "describe_services",
    "make_exec_service_tool",
]

EXEC_SERVICE_TOOL_NAME = "exec_service"
"""The name the model sees."""

logger = logging.getLogger("agent_harness_platform.services")

_MAX_ERRORS_SHOWN = 10


def check_services(registry: ServiceRegistry, names: Iterable[str]) -> None:
    """Build-time check: every name in ``names`` (e.g. a profile's services) is registered."""
    unknown = sorted(set(names) - set(registry.names()))
    if unknown:
        raise ConfigurationError(
            f"Unknown service(s) {', '.join(map(repr, unknown))} in allowed_services; known "
            f"services: {', '.join(registry.names()) or '(none)'}. Fix the name or register "
            "the service in the registry given to the agent."
        )


def describe_services(registry: ServiceRegistry, allowed: Collection[str]) -> str:
    """The ``exec_service`` description: each allowed service, its summary and arguments."""
    lines = [
        "Call a typed service on the host with `service_name` and `args` (a JSON object with "
        "exactly the arguments listed). The answer is "
        '{"ok": true, "service": ..., "result": {...}} or, when the service fails, '
        '{"ok": false, "service": ..., "error": {"code", "status", "message"}}. '
        "Invalid arguments are explained so you can fix the call.",
        "",
    ]
    names = sorted(set(allowed))
    if not names:
        lines.append("No services are available to this agent; do not call this tool.")
        return "\n".join(lines)
    lines.append("Services:")
    for name in names:
        service = registry.get(name)
        if service is None:
            continue
        lines.append(f"- {service.name}: {service.summary}")
        lines.extend(f"    {arg}" for arg in _describe_args(service.args_model))
    return "\n".join(lines)


def make_exec_service_tool(
    registry: ServiceRegistry,
    allowed: Collection[str],
    context: ServiceContext,
    *,
    before_call: Callable[[str, BaseModel], None] | None = None,
) -> Tool[Any]:
    """Build the ``exec_service`` tool for the services in ``allowed`` (empty: none).

    ``exec_service(service_name, args)`` returns
    ``{"ok": True, "service": name, "result": {...}}`` or
    ``{"ok": False, "service": name, "error": {"code", "status", "message"}}`` with ``code`` one
    of ``http_error``, ``unreachable``, ``timeout``, ``missing_secret``, ``bad_response``.
    A service not in ``allowed`` and invalid arguments raise ``ModelRetry``.
    ``before_call(name, args)`` runs with the validated args just before the handler; an
    exception from it propagates, except :class:`ApprovalRejected`, which comes back as the
    typed error ``rejected`` so the model is told and nothing runs.
    """
    check_services(registry, allowed)
    # Fixed now: registering more services later does not widen what this agent may call.
    services: dict[str, Service[Any, Any]] = {}
    for name in sorted(set(allowed)):
        service = registry.get(name)
        assert service is not None  # check_services guarantees it
        services[name] = service
    allowed_list = ", ".join(services) or "(none)"

    def exec_service(service_name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Call one of the services listed in this tool's description.

        Args:
            service_name: The service to call, exactly as listed, e.g. "lookup_wiki".
            args: The service's arguments as a JSON object, e.g. {"topic": "durability"}.
        """
        service = services.get(service_name)
        if service is None:
            logger.info("[services] refused %s: not allowed", _short(service_name))
            raise ModelRetry(
                f"Service {service_name!r} is not available. Allowed services: {allowed_list}."
            )
        try:
            parsed = service.args_model.model_validate(args)
        except ValidationError as exc:
            problems = _format_errors(exc)
            logger.info(
                "[services] refused %s: invalid args (%d errors)", service.name, len(problems)
            )
            raise ModelRetry(
                f"Invalid args for service {service.name!r}:\n"
                + "\n".join(f"- {problem}" for problem in problems)
                + f"\nExpected args: {_signature(service.args_model)}. Fix them and call again."
            ) from None
        if before_call is not None:
            try:
                before_call(service.name, parsed)
            except ApprovalRejected as exc:
                logger.info("[services] %s not called: the approval was rejected", service.name)
                return {
                    "ok": False,
                    "service": service.name,
                    "error": {"code": "rejected", "status": None, "message": str(exc)},
                }
        return _run(service, parsed, context)

    return Tool(
        exec_service,
        name=EXEC_SERVICE_TOOL_NAME,
        description=describe_services(registry, services),
        takes_ctx=False,
    )


def _run(service: Service[Any, Any], args: BaseModel, context: ServiceContext) -> dict[str, Any]:
    described = service.describe_args(args) if service.describe_args else ""
    prefix = f"[services] {service.name}" + (f" {described}" if described else "")
    started = time.perf_counter()
    try:
        result = service.handler(args, context)
        if not isinstance(result, service.result_model):
            result = service.result_model.model_validate(result)
    except ServiceCallError as exc:
        elapsed = _ms(started)
        status = f" {exc.status}" if exc.status is not None else ""
        logger.info("%s → error %s%s in %d ms", prefix, exc.code, status, elapsed)
        return {
            "ok": False,
            "service": service.name,
            "error": {"code": exc.code, "status": exc.status, "message": str(exc)},
        }
    elapsed = _ms(started)
    summary = service.describe_result(result) if service.describe_result else "ok"
    logger.info("%s → %s in %d ms", prefix, summary, elapsed)
    return {"ok": True, "service": service.name, "result": result.model_dump(mode="json")}


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _short(value: object, limit: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _format_errors(exc: ValidationError) -> list[str]:
    """``field: message`` lines; pydantic's input values are left out on purpose."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "args"
        problems.append(f"{where}: {error['msg']}")
    if len(problems) > _MAX_ERRORS_SHOWN:
        hidden = len(problems) - _MAX_ERRORS_SHOWN
        problems = [*problems[:_MAX_ERRORS_SHOWN], f"... and {hidden} more"]
    return problems


def _signature(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    fields = [f"{name}: {_type_name(spec, schema)}" for name, spec in schema["properties"].items()]
    return "{" + ", ".join(fields) + "}"


def _describe_args(model: type[BaseModel]) -> list[str]:
    """One line per argument, from the args model's JSON schema."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    lines = []
    for name, spec in schema.get("properties", {}).items():
        facts = [_type_name(spec, schema)]
        if name in required:
            facts.append("required")
        elif "default" in spec:
            facts.append(f"default {json.dumps(spec['default'])}")
        facts.extend(_constraints(spec))
        description = spec.get("description", "")
        lines.append(f"{name} ({', '.join(facts)}): {description}".rstrip(": "))
    return lines or ["(no arguments: pass {})"]


def _type_name(spec: dict[str, Any], root: dict[str, Any]) -> str:
    if "$ref" in spec:
        target = root.get("$defs", {}).get(spec["$ref"].rsplit("/", 1)[-1], {})
        return str(target.get("type", "object"))
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(value) for value in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    if "anyOf" in spec:
        return " or ".join(_type_name(option, root) for option in spec["anyOf"])
    kind = spec.get("type", "any")
    if kind == "array":
        return f"array of {_type_name(spec.get('items', {}), root)}"
    if isinstance(kind, list):
        return " or ".join(map(str, kind))
    return str(kind)


def _constraints(spec: dict[str, Any]) -> list[str]:
    facts = []
    low, high = spec.get("minLength"), spec.get("maxLength")
    if low is not None and high is not None:
        facts.append(f"{low}-{high} chars")
    elif high is not None:
        facts.append(f"at most {high} chars")
    elif low is not None:
        facts.append(f"at least {low} chars")
    if "pattern" in spec:
        facts.append(f"pattern {spec['pattern']}")
    for key, label in (("minimum", ">="), ("maximum", "<="), ("maxItems", "at most items:")):
        if key in spec:
            facts.append(f"{label} {spec[key]}")
    return facts
