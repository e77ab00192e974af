"""The shared ``main()`` of the stage scripts: env toggles, timing, output, exit codes.

Stage scripts hold a profile and a flow; everything a user sees around the run comes from
here, so all six behave alike:

* ``FORCE_FAILURE=1`` is passed to the flow, which crashes between turn 1 and turn 2.
* ``DISABLE_CACHE=1`` runs the flow with ``cache=False`` (every turn re-executes).
* ``AHP_MODEL`` picks the model; otherwise the profile's model when its key is set, else the
  offline model, announced in one line.

On success it prints the flow's result, the model calls this run paid for, and
``[took X.Xs]``; on failure ``Flow failed after X.Xs: <reason>`` and exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .models import choose_model
from .profile import Profile
from .session import MODEL_CALL_LOG_ENV

__all__ = ["ForcedFailure", "configure_logging", "env_flag", "run_stage"]

_TRUE = {"1", "true", "yes", "on"}


class ForcedFailure(RuntimeError):
    """The simulated crash ``FORCE_FAILURE=1`` asks for."""

    def __init__(self, after: str = "turn 1") -> None:
        super().__init__(
            f"FORCE_FAILURE=1: simulated crash after {after}. Re-run without FORCE_FAILURE: "
            "the completed turn is served from the Kitaru cache and only the rest runs."
        )


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool:
    """True when the variable is set to 1/true/yes/on (case-insensitive)."""
    env = os.environ if env is None else env
    return env.get(name, "").strip().lower() in _TRUE


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING and not message.startswith("["):
            return f"{record.levelname.lower()}: {message}"
        return message


def configure_logging() -> None:
    """Show the platform's ``[sandbox]``/``[proxy]``/... lines on stdout, as the stages do."""
    # The library configures no handlers; the stage scripts are an application, so they do.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PlainFormatter())
    root = logging.getLogger("agent_harness_platform")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # httpx logs every request at INFO; the platform's own lines already say what happened.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as stream:
            return sum(1 for _ in stream)
    except FileNotFoundError:
        return 0


def run_stage(
    flow: Any,
    profile: Profile,
    *,
    flow_kwargs: Mapping[str, Any] | None = None,
    render: Callable[[Any], str] = str,
    argv: list[str] | None = None,
) -> int:
    """Run ``flow`` for ``profile`` the way every stage script does; returns the exit code.

    The flow must accept ``profile`` (a JSON dict), ``model`` (a model string) and
    ``force_failure`` (bool) parameters; ``flow_kwargs`` adds stage-specific ones.
    """
    del argv  # reserved for future flags; the stage scripts take none today
    configure_logging()
    choice = choose_model(profile.model)
    if choice.announcement:
        print(choice.announcement, flush=True)
    force_failure = env_flag("FORCE_FAILURE")
    disable_cache = env_flag("DISABLE_CACHE")
    if disable_cache:
        print("[cache] DISABLE_CACHE=1: every turn re-executes (cache=False)", flush=True)

    call_log_env = os.environ.get(MODEL_CALL_LOG_ENV)
    own_log = None
    if not call_log_env:
        handle, name = tempfile.mkstemp(prefix="ahp-model-calls-", suffix=".log")
        os.close(handle)
        own_log = Path(name)
        os.environ[MODEL_CALL_LOG_ENV] = name
    call_log = Path(os.environ[MODEL_CALL_LOG_ENV])
    calls_before = _count_lines(call_log)

    started = time.monotonic()
    try:
        handle_ = flow.run(
            profile=profile.model_dump(mode="json"),
            model=choice.spec,
            force_failure=force_failure,
            cache=False if disable_cache else None,
            **dict(flow_kwargs or {}),
        )
        result = handle_.wait()
    except KeyboardInterrupt:
        print(f"\nInterrupted after {time.monotonic() - started:.1f}s", flush=True)
        return 130
    except Exception as exc:  # the user sees one clear line, not a traceback
        elapsed = time.monotonic() - started
        calls = _count_lines(call_log) - calls_before
        print(f"[model] {calls} model call(s) this run", flush=True)
        reason = str(exc) or type(exc).__name__
        print(f"Flow failed after {elapsed:.1f}s: {reason}", flush=True)
        return 1
    finally:
        if own_log is not None:
            os.environ.pop(MODEL_CALL_LOG_ENV, None)
    elapsed = time.monotonic() - started
    calls = _count_lines(call_log) - calls_before
    if own_log is not None:
        own_log.unlink(missing_ok=True)
    print()
    print(render(result), flush=True)
    print()
    print(f"[model] {calls} model call(s) this run (execution {handle_.exec_id})", flush=True)
    print(f"[took {elapsed:.1f}s]", flush=True)
    return 0
