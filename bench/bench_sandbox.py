"""Sandbox overhead: per-command round trip and start+stop, per backend.

Run from the repository root:

    uv run python bench/bench_sandbox.py [--commands 200] [--starts 20]

The baseline is the plain persistent shell (the host backend: the same engine without any
isolation). Targets, reported and not asserted: per-command overhead within 1 ms of the
baseline, start+stop under 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_harness_platform.sandbox import (
    BwrapSandbox,
    DockerSandbox,
    HostSandbox,
    SandboxConfig,
)
from agent_harness_platform.sandbox._lifecycle import ShellSandbox
from agent_harness_platform.sandbox.docker import docker_problem


@dataclass(frozen=True)
class Row:
    backend: str
    command_ms: float | None
    start_stop_ms: float | None
    note: str = ""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def per_command(factory: Callable[[], ShellSandbox], count: int) -> float:
    with factory() as sandbox:
        for _ in range(20):  # warm up
            sandbox.run("true")
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            result = sandbox.run("true")
            samples.append(time.perf_counter() - started)
            assert result.exit_code == 0
    return median_ms(samples)


def start_stop(factory: Callable[[], ShellSandbox], count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        sandbox = factory()
        sandbox.start()
        sandbox.close()
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=200, help="commands per backend")
    parser.add_argument("--starts", type=int, default=20, help="start+stop cycles per backend")
    args = parser.parse_args()

    backends: list[tuple[str, Callable[[], ShellSandbox], str | None]] = [
        ("host (plain shell)", lambda: HostSandbox(SandboxConfig(backend="host")), None),
        ("bwrap", lambda: BwrapSandbox(SandboxConfig(backend="bwrap")), None),
        (
            "docker",
            lambda: DockerSandbox(SandboxConfig(backend="docker")),
            docker_problem(SandboxConfig().image),
        ),
    ]
    rows = []
    for name, factory, problem in backends:
        if problem is not None:
            rows.append(Row(name, None, None, f"skipped: {problem}"))
            continue
        rows.append(
            Row(name, per_command(factory, args.commands), start_stop(factory, args.starts))
        )

    base = rows[0]
    assert base.command_ms is not None and base.start_stop_ms is not None
    print(f"median of {args.commands} runs of `true`, and of {args.starts} start+stop cycles\n")
    columns = ("command ms", "vs plain", "start+stop ms", "vs plain")
    header = f"{'backend':<20} {columns[0]:>10} {columns[1]:>10} {columns[2]:>14} {columns[3]:>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.command_ms is None or row.start_stop_ms is None:
            print(f"{row.backend:<20} {row.note}")
            continue
        command_delta = row.command_ms - base.command_ms
        start_ratio = row.start_stop_ms / base.start_stop_ms
        print(
            f"{row.backend:<20} {row.command_ms:>10.3f} {command_delta:>+9.3f}  "
            f"{row.start_stop_ms:>14.1f} {start_ratio:>9.1f}x"
        )
    print("\ntargets: per-command overhead within 1 ms of the plain shell; start+stop < 100 ms")
    for row in rows[1:]:
        if row.command_ms is None or row.start_stop_ms is None:
            continue
        command_ok = row.command_ms - base.command_ms <= 1.0
        start_ok = row.start_stop_ms < 100
        print(
            f"  {row.backend}: per-command {'met' if command_ok else 'MISSED'}, "
            f"start+stop {'met' if start_ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
