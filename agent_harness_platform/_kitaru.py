"""Small, safe touch points with Kitaru used across the rails."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

logger = logging.getLogger("agent_harness_platform")


def log_metadata(**values: Any) -> None:
    """Attach metadata to the current checkpoint or run; a no-op outside a Kitaru flow.

    The rails also work in a plain PydanticAI agent (a team's tests, a notebook), where there
    is no run to attach to. A failure to record metadata never fails the agent's work.
    """
    import kitaru
    from kitaru.errors import KitaruContextError
    from kitaru.runtime import current_execution_id

    if current_execution_id() is None:
        return
    try:
        kitaru.log(**values)
    except KitaruContextError:
        return
    except Exception:  # metadata is best-effort; the run's own work must go on
        logger.debug("could not record run metadata %s", sorted(values), exc_info=True)


def kitaru_secret_lookup(name: str) -> Mapping[str, str]:
    """Read the secret ``name`` from the active Kitaru store (raises ``KeyError`` if absent)."""
    import kitaru  # imported here: importing kitaru costs about two seconds

    try:
        secret = kitaru.get_secret(name)
    except Exception as exc:
        if "not found" in str(exc).lower():
            raise KeyError(name) from None
        raise ConfigurationError(
            f"could not read secret {name!r} from the Kitaru store ({type(exc).__name__}); "
            "check that the store is initialised (`kitaru init`) or run `bash setup.sh`"
        ) from exc
    return {key: value for key, value in secret.values.items() if value is not None}
