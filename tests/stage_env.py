"""Running stage scripts and `ahp` as subprocesses against their own Kitaru store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .conftest import PROJECT_ROOT


@dataclass(frozen=True)
class DemoTokens:
    wiki: str
    webhook: str


def prepare_store(env: dict[str, str]) -> DemoTokens:
    """Run setup.sh's state step in the store ``env`` points at; return the demo tokens."""
    subprocess.run(
        [sys.executable, "-m", "agent_harness_platform.setup_state"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    code = (
        "import json, kitaru; print(json.dumps({n: kitaru.get_secret(n).values['value'] "
        "for n in ('wiki-token', 'webhook-token')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    values = json.loads(out.stdout.strip().splitlines()[-1])
    return DemoTokens(wiki=values["wiki-token"], webhook=values["webhook-token"])


def run_script(
    script: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ahp(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_harness_platform.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
