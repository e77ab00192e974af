"""Typed services: host-side actions the model calls through ``exec_service``.

* :mod:`.registry`: :class:`Service`, :class:`ServiceRegistry`, :class:`ServiceContext`,
  :class:`ServiceCallError` (the small base a team extends);
* :mod:`.handlers`: the built-in ``lookup_wiki`` and ``publish_summary`` and
  :func:`default_registry`;
* :mod:`.tool`: :func:`make_exec_service_tool` and the build-time :func:`check_services`.
"""

from agent_harness_platform.services.handlers import (
    LookupWikiArgs,
    LookupWikiResult,
    PublishSummaryArgs,
    PublishSummaryResult,
    WikiSnippet,
    default_registry,
)
from agent_harness_platform.services.registry import (
    Service,
    ServiceCallError,
    ServiceContext,
    ServiceErrorCode,
    ServiceRegistry,
    idempotency_key,
    kitaru_secret_lookup,
)
from agent_harness_platform.services.tool import (
    EXEC_SERVICE_TOOL_NAME,
    check_services,
    describe_services,
    make_exec_service_tool,
)

__all__ = [
    "EXEC_SERVICE_TOOL_NAME",
    "LookupWikiArgs",
    "LookupWikiResult",
    "PublishSummaryArgs",
    "PublishSummaryResult",
    "Service",
    "ServiceCallError",
    "ServiceContext",
    "ServiceErrorCode",
    "ServiceRegistry",
    "WikiSnippet",
    "check_services",
    "default_registry",
    "describe_services",
    "idempotency_key",
    "kitaru_secret_lookup",
    "make_exec_service_tool",
]
