"""The offline model follows the prompt, one tool call per question, and composes from results."""

from __future__ import annotations

from agent_harness_platform import Profile, Rails, build_agent
from agent_harness_platform.offline import OFFLINE_MODEL_NAME
from agent_harness_platform.sandbox.base import ExecResult

from .fakes import ScriptedSandbox

TURN_1 = (
    "Investigate this machine: OS, kernel version, current user, number of processes, "
    "one command per question."
)
TURN_2 = (
    "Write a one-paragraph summary for someone who has never seen this machine; no new commands."
)

ANSWERS = {
    "cat /etc/os-release": ExecResult(
        0, 'NAME="Testix"\nPRETTY_NAME="Testix 9 (fable)"\n', "", "/"
    ),
    "uname -r": ExecResult(0, "9.9.9-test\n", "", "/"),
    "whoami": ExecResult(0, "tester\n", "", "/"),
    "ps -e --no-headers | wc -l": ExecResult(0, "17\n", "", "/"),
    "cd /tmp": ExecResult(0, "", "", "/tmp"),
}


def _agent(sandbox: ScriptedSandbox) -> object:
    profile = Profile(
        name="default", system_prompt="Investigate.", model="offline", allowed_tools={"exec"}
    )
    return build_agent(profile, rails=Rails(sandbox=sandbox))


def test_turn_one_runs_one_command_per_question_and_reports_results() -> None:
    sandbox = ScriptedSandbox(ANSWERS)
    agent = _agent(sandbox)
    result = agent.run_sync(TURN_1)  # type: ignore[attr-defined]
    assert [c for c, _ in sandbox.commands] == [
        "cat /etc/os-release",
        "uname -r",
        "whoami",
        "ps -e --no-headers | wc -l",
    ]
    for fact in ("Testix 9 (fable)", "9.9.9-test", "tester", "17"):
        assert fact in result.output
    usage = result.usage
    assert usage.requests == 5 and usage.tool_calls == 4
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert result.all_messages()[-1].model_name == OFFLINE_MODEL_NAME


def test_turn_two_summarises_from_history_without_new_commands() -> None:
    sandbox = ScriptedSandbox(ANSWERS)
    agent = _agent(sandbox)
    first = agent.run_sync(TURN_1)  # type: ignore[attr-defined]
    before = len(sandbox.commands)
    second = agent.run_sync(TURN_2, message_history=first.all_messages())  # type: ignore[attr-defined]
    assert len(sandbox.commands) == before
    assert second.usage.requests == 1
    for fact in ("Testix 9 (fable)", "9.9.9-test", "tester", "17 processes"):
        assert fact in second.output


def test_without_history_the_summary_says_there_is_nothing_to_summarise() -> None:
    result = _agent(ScriptedSandbox(ANSWERS)).run_sync(TURN_2)  # type: ignore[attr-defined]
    assert "nothing to summarise" in result.output


def test_cd_and_summary_file_follow_the_prompt() -> None:
    sandbox = ScriptedSandbox(ANSWERS)
    agent = _agent(sandbox)
    first = agent.run_sync(  # type: ignore[attr-defined]
        "investigate this machine: OS, kernel version, current user, one command each, then cd into /tmp"
    )
    assert [c for c, _ in sandbox.commands][-1] == "cd /tmp"
    agent.run_sync(  # type: ignore[attr-defined]
        "write a brief 2-sentence summary to summary.txt in the current directory, then cat it",
        message_history=first.all_messages(),
    )
    write = sandbox.commands[-1][0]
    assert write.startswith("cat > summary.txt <<'EOF'\n")
    assert "Testix 9 (fable)" in write and "9.9.9-test" in write
    assert write.endswith("cat summary.txt")


def test_without_exec_it_says_it_cannot_run_commands() -> None:
    profile = Profile(name="default", system_prompt="Investigate.", model="offline")
    result = build_agent(profile).run_sync(TURN_1)
    assert "cannot run commands" in result.output
