"""Stage 6 end to end: a person answers from another process, through `ahp`, while the run
waits durably in kitaru.wait(); and a run killed with kill -9 while waiting is resumed.

Each test runs the real script against its own Kitaru store and a mock server the test
holds, so the posts it records can be read across processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mocks.server import MockServices

from .conftest import PROJECT_ROOT
from .e2e_helpers import ahp, execution_record, model_calls, prepare_store

SUFFIX_QUESTION = "What suffix should I add to the summary before publishing?"
CALLS_BEFORE_THE_QUESTION = 4  # list skills, read skill, lookup_wiki, ask_question
CALLS_OF_A_WHOLE_RUN = 6  # ... then publish_summary and the final answer


@pytest.fixture
def stage(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[dict[str, str], MockServices]]:
    tokens = prepare_store(fresh_store_env)
    with MockServices(wiki_token=tokens.wiki, webhook_token=tokens.webhook) as mock:
        env = {
            **fresh_store_env,
            "AHP_MOCK_URL": mock.base_url,
            "AHP_MODEL_CALL_LOG": str(tmp_path / "calls.log"),
            "ZENML_DISABLE_INTERACTIVE_INPUT": "true",
        }
        yield env, mock


def spawn(args: list[str], env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """Start a process whose output goes to ``out`` (the child keeps its own descriptor)."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def start_stage(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, str(PROJECT_ROOT / "stage_6_approval.py")], env, out)


def wait_for_pending(
    env: dict[str, str], kind: str, deadline_s: float = 240
) -> tuple[str, str, str]:
    """Poll `ahp pending` until a wait of ``kind`` shows; return (execution, wait, listing)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        listing = ahp(env, "pending").stdout
        match = re.search(rf"^(\S+)\s+approval_agent\s+{kind}\s+wait=(\S+)$", listing, re.M)
        if match:
            return match.group(1), match.group(2), listing
        time.sleep(2)
    raise AssertionError(f"no pending {kind} within {deadline_s}s; last listing:\n{listing}")


@pytest.mark.timeout(900)
def test_answered_from_another_process_publishes_once_with_the_answer(
    stage: tuple[dict[str, str], MockServices], tmp_path: Path
) -> None:
    env, mock = stage
    out = tmp_path / "stage6.out"
    run = start_stage(env, out)
    try:
        execution, _, listing = wait_for_pending(env, "question")
        assert SUFFIX_QUESTION in listing
        printed = out.read_text()
        assert f"uv run ahp answer {execution}" in printed  # the exact command to answer
        answered = ahp(env, "answer", execution, "Verified by the on-call team")
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert "continues" in answered.stdout  # the waiting process goes on by itself

        _, approval, listing = wait_for_pending(env, "approval")
        assert '"webhook_id": "team-summaries"' in listing
        assert "Verified by the on-call team." in listing  # the exact content to approve

        wrong = ahp(env, "answer", execution, '"yes"', "--wait", approval)
        assert wrong.returncode == 2
        assert "refused" in wrong.stderr and "keeps waiting" in wrong.stderr
        assert f"wait={approval}" in ahp(env, "pending").stdout
        assert mock.records() == []

        approved = ahp(env, "approve", execution, "--approver", "on-call")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert run.wait(timeout=300) == 0, out.read_text()
    finally:
        if run.poll() is None:
            run.kill()
    output = out.read_text()
    posts = mock.records()
    assert len(posts) == 1
    assert posts[0]["content"].endswith("Verified by the on-call team.")
    assert f"Published {posts[0]['message_id']} at {posts[0]['posted_at']}: " in output
    assert "[approval] publish_summary approved by on-call" in output
    approvals = execution_record(env, execution)["metadata"]["ahp_approvals"]
    (record,) = approvals.values()
    assert record["action"] == "publish_summary"
    assert record["approved"] is True and record["approver"] == "on-call"
    questions = execution_record(env, execution)["metadata"]["ahp_questions"]
    (asked,) = questions.values()
    assert asked["answer"] == "Verified by the on-call team"
    assert model_calls(Path(env["AHP_MODEL_CALL_LOG"])) == CALLS_OF_A_WHOLE_RUN


@pytest.mark.timeout(900)
def test_killed_while_waiting_resumes_without_repaying_finished_calls(
    stage: tuple[dict[str, str], MockServices], tmp_path: Path
) -> None:
    env, mock = stage
    calls = Path(env["AHP_MODEL_CALL_LOG"])
    run = start_stage(env, tmp_path / "stage6.out")
    execution, _, _ = wait_for_pending(env, "question")
    assert model_calls(calls) == CALLS_BEFORE_THE_QUESTION
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=30)

    resumer = spawn(
        [
            sys.executable,
            "-m",
            "agent_harness_platform.cli",
            "answer",
            execution,
            "For internal use only",
        ],
        env,
        tmp_path / "resume.out",
    )
    try:
        _, _, listing = wait_for_pending(env, "approval")
        assert "For internal use only." in listing
        approved = ahp(env, "approve", execution)
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert resumer.wait(timeout=300) == 0, (tmp_path / "resume.out").read_text()
    finally:
        if resumer.poll() is None:
            resumer.kill()
    resumed = (tmp_path / "resume.out").read_text()
    assert "the waiting process is gone, resuming here" in resumed
    assert f"execution {execution}: completed" in resumed
    # The four finished model calls came from their checkpoints; only the rest was paid.
    assert model_calls(calls) == CALLS_OF_A_WHOLE_RUN
    posts = mock.records()
    assert len(posts) == 1
    assert posts[0]["content"].endswith("For internal use only.")
