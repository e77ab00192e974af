"""Stage 1 benchmark: what durability costs and what it saves.

    uv run python bench/bench_stage_1.py [--runs 5]

Reports (medians of --runs, reported, not asserted):

* wall time of a fresh stage 1 process (empty Kitaru store, nothing cached) and of the re-run
  after a forced failure (turn 1 from the cache);
* model calls paid on that re-run, against a plain PydanticAI loop that starts over;
* the Kitaru wrapping's overhead in a warm process: the same two-turn agent run inside a
  ``@kitaru.flow`` with ``cache=False`` against the same agent run plainly.

Each process gets its own throwaway Kitaru store; your own store is never touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "stage_1_basic_agent.py"


def isolated_env(base: Path) -> dict[str, str]:
    config, repo = base / "config", base / "repo"
    config.mkdir(parents=True, exist_ok=True)
    repo.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for key in (
        "FORCE_FAILURE",
        "DISABLE_CACHE",
        "AHP_MODEL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        env.pop(key, None)
    env.update(
        KITARU_CONFIG_PATH=str(config),
        ZENML_CONFIG_PATH=str(config),
        ZENML_REPOSITORY_PATH=str(repo),
        KITARU_ANALYTICS_OPT_IN="false",
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_DISABLE_INTERACTIVE_INPUT="true",
        AHP_MODEL_CALL_LOG=str(base / "calls.log"),
    )
    return env


def timed_run(env: dict[str, str], **flags: str) -> tuple[float, int]:
    log = Path(env["AHP_MODEL_CALL_LOG"])
    before = len(log.read_text().splitlines()) if log.exists() else 0
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=ROOT,
        env={**env, **flags},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    after = len(log.read_text().splitlines()) if log.exists() else 0
    return elapsed, after - before


def warm_overhead_in_process(runs: int) -> tuple[float, float]:
    """Median seconds of the two turns plainly and inside a flow (cache off), this process.

    Runs in a child whose main module is this file (ZenML needs a file to find its source
    root), so imports and store start-up are paid once, before the timed loop.
    """
    sys.path.insert(0, str(ROOT))
    from agent_harness_platform import Rails, build_agent
    from agent_harness_platform.sandbox import open_sandbox
    from agent_harness_platform.session import sandbox_config_for
    from stage_1_basic_agent import DEFAULT_PROFILE, TURN_1, TURN_2, basic_agent

    profile = DEFAULT_PROFILE.model_copy(update={"model": "offline"})

    def plain() -> None:
        with open_sandbox(sandbox_config_for(profile), allow_host=True) as sandbox:
            agent = build_agent(profile, rails=Rails(sandbox=sandbox))
            first = agent.run_sync(TURN_1)
            agent.run_sync(TURN_2, message_history=first.all_messages())

    def durable() -> None:
        params = profile.model_dump(mode="json")
        basic_agent.run(profile=params, model="offline", cache=False).wait()

    plain()
    durable()  # warm both paths
    plain_times, durable_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        plain()
        plain_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        durable()
        durable_times.append(time.perf_counter() - started)
    return statistics.median(plain_times), statistics.median(durable_times)


def warm_overhead(runs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="ahp-bench-") as tmp:
        env = isolated_env(Path(tmp))
        out = subprocess.run(
            [sys.executable, __file__, "--warm", "--runs", str(runs)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
    if out.returncode != 0:
        raise SystemExit(f"warm overhead run failed:\n{out.stderr[-3000:]}")
    plain_s, durable_s = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
    return plain_s, durable_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm:
        plain_s, durable_s = warm_overhead_in_process(args.runs)
        print(plain_s, durable_s)
        return 0

    fresh, fresh_calls, rerun, rerun_calls, crash_calls = [], [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ahp-bench-") as tmp:
            env = isolated_env(Path(tmp))
            seconds, paid = timed_run(env)
            fresh.append(seconds)
            fresh_calls.append(paid)
        with tempfile.TemporaryDirectory(prefix="ahp-bench-") as tmp:
            env = isolated_env(Path(tmp))
            _, paid_before_crash = timed_run(env, FORCE_FAILURE="1")
            seconds, paid = timed_run(env)
            crash_calls.append(paid_before_crash)
            rerun.append(seconds)
            rerun_calls.append(paid)

    plain_s, durable_s = warm_overhead(args.runs)
    turn_1 = statistics.median(crash_calls)
    turn_2 = statistics.median(fresh_calls) - turn_1
    paid_on_rerun = statistics.median(rerun_calls)
    print(f"stage 1 benchmark, offline model, medians of {args.runs} runs")
    print(f"{'measure':<52}{'value':>12}")
    print(f"{'fresh run, wall (new process, empty store)':<52}{statistics.median(fresh):>11.2f}s")
    print(f"{'re-run after FORCE_FAILURE, wall':<52}{statistics.median(rerun):>11.2f}s")
    print(f"{'model calls paid before the crash (turn 1)':<52}{turn_1:>12.0f}")
    print(f"{'model calls of a whole fresh run':<52}{statistics.median(fresh_calls):>12.0f}")
    print(f"{'model calls paid on the re-run (Kitaru)':<52}{paid_on_rerun:>12.0f}")
    print(f"{'model calls a plain PydanticAI loop pays (starts over)':<52}{turn_1 + turn_2:>12.0f}")
    print(f"{'re-paid calls for the completed turn (Kitaru)':<52}{paid_on_rerun - turn_2:>12.0f}")
    print(f"{'two turns, plain agent (warm process)':<52}{plain_s:>11.3f}s")
    print(f"{'two turns, KitaruAgent in a flow, cache off (warm)':<52}{durable_s:>11.3f}s")
    print(f"{'Kitaru wrapping overhead (ratio)':<52}{durable_s / plain_s:>11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
