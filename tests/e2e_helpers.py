"""Shared pieces of the stage end-to-end tests: run a stage script, read what it printed.

The stage scripts print one ``[sandbox] $ <command>`` line per command and, after it, one
``[sandbox]   → exit=N, stdout=N chars, cwd=/path`` line; other rails' lines (proxy, mocks)
may come in between. :func:`executed` pairs them, so a test reads what really ran and where.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import PROJECT_ROOT

__all__ = [
    "Executed",
    "HostFiles",
    "executed",
    "execution_id",
    "host_user",
    "model_calls",
    "os_pretty_name",
    "run_script",
    "sandbox_state_dirs",
    "section",
    "stage_env",
    "summary_paths",
]

_COMMAND = re.compile(r"^\[sandbox\] \$ (?P<command>.*)$")
_RESULT = re.compile(
    r"^\[sandbox\]   → exit=(?P<exit>-?\d+), stdout=(?P<chars>\d+) chars, cwd=(?P<cwd>\S+)"
)
_STARTED = re.compile(
    r"^\[sandbox\] Started \w+ sandbox \w+ \(workspace (?P<workspace>[^,\s]+), hostname sandbox, user sandbox\)"
)
_EXECUTION = re.compile(r"^\[model\] \d+ model call\(s\) this run \(execution (?P<id>[0-9a-f-]+)\)")


@dataclass(frozen=True)
class Executed:
    """One sandbox command as the stage printed it (a heredoc shows its first line + ``…``)."""

    command: str
    exit_code: int
    stdout_chars: int
    cwd: str


def run_script(
    script: str,
    env: dict[str, str],
    *,
    cwd: Path = PROJECT_ROOT,
    timeout: float = 300,
    **flags: str,
) -> subprocess.CompletedProcess[str]:
    """Run ``<PROJECT_ROOT>/<script>`` as the user would, with ``flags`` added to ``env``."""
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script)],
        cwd=cwd,
        env={**env, **flags},
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


@dataclass(frozen=True)
class DemoTokens:
    wiki: str
    webhook: str


_CREATE_SECRETS = """
import json
from agent_harness_platform.proxy import kitaru_secret_lookup
from agent_harness_platform.setup_state import DEMO_SECRETS, ensure_demo_secrets
ensure_demo_secrets()
print(json.dumps({name: kitaru_secret_lookup(name)["value"] for name in DEMO_SECRETS}))
"""


def prepare_store(env: dict[str, str]) -> DemoTokens:
    """Create the demo secrets in the store ``env`` points at, the way setup.sh does, and
    return their values."""
    done = subprocess.run(
        [sys.executable, "-c", _CREATE_SECRETS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return DemoTokens(wiki=values["wiki-token"], webhook=values["webhook-token"])


def stage_env(env: dict[str, str], call_log: Path) -> dict[str, str]:
    """``env`` with the model-call log set and the user's toggles cleared."""
    clean = {**env, "AHP_MODEL_CALL_LOG": str(call_log)}
    for name in ("FORCE_FAILURE", "DISABLE_CACHE", "AHP_MOCK_URL", "AHP_SANDBOX"):
        clean.pop(name, None)
    return clean


def model_calls(log: Path) -> int:
    """Model requests paid so far: every request appends one line to the call log."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def executed(stdout: str) -> list[Executed]:
    """The sandbox commands in the order they ran, each with its exit code and cwd after."""
    runs: list[Executed] = []
    pending: str | None = None
    for line in stdout.splitlines():
        if match := _COMMAND.match(line):
            assert pending is None, f"command {pending!r} has no result line before {line!r}"
            pending = match["command"]
        elif match := _RESULT.match(line):
            assert pending is not None, f"result line without a command: {line!r}"
            runs.append(Executed(pending, int(match["exit"]), int(match["chars"]), match["cwd"]))
            pending = None
    assert pending is None, f"command {pending!r} never printed its result line"
    return runs


def execution_id(stdout: str) -> str:
    """The execution id of a successful stage run (from its ``[model] ...`` line)."""
    ids = [m["id"] for line in stdout.splitlines() if (m := _EXECUTION.match(line))]
    assert len(ids) == 1, f"expected one `[model] ... (execution <id>)` line, got {ids}"
    return ids[0]


def sandbox_state_dirs(stdout: str) -> list[Path]:
    """The host directories of the sandboxes a run started (the parent of each workspace)."""
    return [
        Path(m["workspace"]).parent for line in stdout.splitlines() if (m := _STARTED.match(line))
    ]


def section(stdout: str, heading: str) -> str:
    """The paragraph(s) under ``# <heading>`` in a stage's printed result, up to the next
    heading or the ``[model]`` line."""
    lines = stdout.splitlines()
    start = lines.index(f"# {heading}") + 1
    body: list[str] = []
    for line in lines[start:]:
        if line.startswith("# ") or line.startswith("[model] "):
            break
        body.append(line)
    return "\n".join(body).strip()


class HostFiles:
    """Host paths a sandboxed run must leave alone: a snapshot to compare with afterwards.

    A path that already existed (another process's file) must be unchanged; a path that did
    not exist must still not exist.
    """

    def __init__(self, *paths: Path) -> None:
        self.paths = paths
        self.before = {path: self._state(path) for path in paths}

    @staticmethod
    def _state(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def changed(self) -> list[Path]:
        """The paths created or modified since the snapshot."""
        return [path for path in self.paths if self._state(path) != self.before[path]]


def summary_paths(*directories: Path) -> HostFiles:
    """``summary.txt`` in each directory, plus the host's own /tmp."""
    unique = dict.fromkeys([Path("/tmp"), *(Path(d).resolve() for d in directories)])
    return HostFiles(*(d / "summary.txt" for d in unique))


def os_pretty_name() -> str:
    """PRETTY_NAME of /etc/os-release (the sandbox binds the host's, read-only)."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    raise AssertionError("/etc/os-release has no PRETTY_NAME")


def host_user() -> str:
    """The host user the tests (and the stage scripts) run as."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def execution_record(env: dict[str, str], execution: str) -> dict[str, Any]:
    """``{"status": ..., "metadata": {...}}`` of a run in the store ``env`` points at."""
    code = (
        "import json, sys; from kitaru import KitaruClient; "
        "e = KitaruClient().executions.get(sys.argv[1]); "
        "print(json.dumps({'status': str(e.status).rsplit('.', 1)[-1].lower(), "
        "'metadata': e.metadata}, default=str))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, execution],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    record: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return record
