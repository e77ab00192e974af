"""Test-wide setup: every test process gets its own Kitaru store.

The environment variables must be set before kitaru or zenml is imported anywhere, which is
why this runs at conftest import time. The user's global store (~/.config/kitaru) is never
touched. Subprocesses started by tests inherit the same variables through ``isolated_env``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _isolate_store() -> Path:
    root = Path(tempfile.mkdtemp(prefix="ahp-test-store-"))
    config = root / "config"
    repo = root / "repo"
    config.mkdir()
    repo.mkdir()
    os.environ["KITARU_CONFIG_PATH"] = str(config)
    os.environ["ZENML_CONFIG_PATH"] = str(config)
    os.environ["ZENML_REPOSITORY_PATH"] = str(repo)
    os.environ["KITARU_ANALYTICS_OPT_IN"] = "false"
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
    os.environ["ZENML_DISABLE_INTERACTIVE_INPUT"] = "true"
    os.environ["AUTO_OPEN_DASHBOARD"] = "false"
    # Never pick up a real provider key from the developer's shell: tests are offline.
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AHP_MODEL", "OPENAI_BASE_URL"):
        os.environ.pop(key, None)
    return root


STORE_ROOT = _isolate_store()


@pytest.fixture(scope="session")
def store_root() -> Path:
    """The per-process Kitaru store directory."""
    return STORE_ROOT


@pytest.fixture
def fresh_store_env(tmp_path: Path) -> dict[str, str]:
    """An environment for a subprocess with its own empty Kitaru store."""
    config = tmp_path / "kitaru-config"
    repo = tmp_path / "kitaru-repo"
    config.mkdir()
    repo.mkdir()
    env = dict(os.environ)
    env.update(
        KITARU_CONFIG_PATH=str(config),
        ZENML_CONFIG_PATH=str(config),
        ZENML_REPOSITORY_PATH=str(repo),
        PYTHONUNBUFFERED="1",
    )
    return env
