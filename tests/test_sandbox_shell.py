"""The persistent shell's behaviour, against the real bwrap backend and the host baseline.

Persistence, separate stderr, exit codes, timeouts that keep the shell, output caps, restart
after the shell died, and the log lines. Every test runs on both backends that share the
engine, so a difference between them is a bug.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent_harness_platform.errors import ConfigurationError, SandboxError
from agent_harness_platform.sandbox import (
    TIMEOUT_EXIT_CODE,
    TRUNCATION_MARKER,
    WORKSPACE,
    BwrapSandbox,
    HostSandbox,
    SandboxConfig,
)
from agent_harness_platform.sandbox._lifecycle import ShellSandbox

pytestmark = pytest.mark.timeout(60)

BACKENDS = {"bwrap": BwrapSandbox, "host": HostSandbox}


@pytest.fixture(params=sorted(BACKENDS))
def sandbox(request: pytest.FixtureRequest) -> Iterator[ShellSandbox]:
    with BACKENDS[request.param](SandboxConfig(backend=request.param)) as sb:
        yield sb


def home_of(sb: ShellSandbox) -> str:
    return WORKSPACE if sb.backend == "bwrap" else str(sb.workspace)


def test_cwd_variables_functions_and_aliases_persist(sandbox: ShellSandbox) -> None:
    sandbox.run("cd /tmp && mkdir -p deep/er && cd deep/er")
    sandbox.run("GREETING=hello; shout() { echo \"$1!\"; }; alias ll='echo listed'")
    sandbox.run("declare -A table=([k]=v); export EXPORTED=yes")
    result = sandbox.run(
        'pwd; echo "$GREETING"; shout hey; ll; echo "${table[k]}"; env | grep EXPORTED'
    )
    assert result.exit_code == 0
    assert result.stdout.split("\n")[:6] == [
        "/tmp/deep/er",
        "hello",
        "hey!",
        "listed",
        "v",
        "EXPORTED=yes",
    ]
    assert result.cwd == "/tmp/deep/er"
    assert not result.restarted


def test_first_cwd_is_the_workspace(sandbox: ShellSandbox) -> None:
    result = sandbox.run("pwd; echo $HOME")
    assert result.stdout == f"{home_of(sandbox)}\n{home_of(sandbox)}\n"
    assert result.cwd == home_of(sandbox)


@dataclass(frozen=True)
class Case:
    name: str
    command: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""


CASES = [
    Case("stdout only", "echo out", 0, stdout="out\n"),
    Case("stderr apart", "echo out; echo err >&2", 0, stdout="out\n", stderr="err\n"),
    Case("exit status", "echo x; false", 1, stdout="x\n"),
    Case("explicit status", "(exit 42)", 42),
    Case("no trailing newline", "printf 'a\\nb'", 0, stdout="a\nb"),
    Case("unicode", "printf 'h\\u00e9llo \\u2713'", 0, stdout="héllo ✓"),
    Case("quotes and backslashes", "echo \"it's\" '\\n' \\$HOME", 0, stdout="it's \\n $HOME\n"),
    Case("multi-line", "for i in 1 2\ndo\n  echo $i\ndone", 0, stdout="1\n2\n"),
    Case("heredoc", "cat <<'EOF'\nline $x\nEOF", 0, stdout="line $x\n"),
    Case("stdin is empty", "cat; read -r line; echo rc=$?", 0, stdout="rc=1\n"),
    Case("command not found", "no-such-command-xyz", 127),
    Case("syntax error stays local", "if then fi", 2),
    Case("set lists variables safely", "set >/dev/null; declare -p >/dev/null; echo ok", 0, "ok\n"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_commands(sandbox: ShellSandbox, case: Case) -> None:
    result = sandbox.run(case.command)
    assert result.exit_code == case.exit_code, result
    assert result.stdout == case.stdout
    if case.stderr or case.exit_code == 0:
        assert result.stderr == case.stderr
    assert not result.timed_out and not result.truncated
    # The shell is still the same one afterwards.
    assert sandbox.run("echo alive").stdout == "alive\n"


def test_printing_every_variable_does_not_confuse_the_framing(sandbox: ShellSandbox) -> None:
    result = sandbox.run("set; declare -p; declare -f")
    assert result.exit_code == 0
    assert "__ahp_frame" in result.stdout
    assert sandbox.run("echo next").stdout == "next\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "command",
    [
        "sleep {n}",
        "while :; do :; done",
        "sleep {n} | cat",
        "x=$(sleep {n})",
        "sh -c 'trap \"\" INT TERM; sleep {n}'",
        "python3 -c 'import time; time.sleep({n})'",
    ],
)
def test_timeout_kills_the_command_and_keeps_the_shell(sandbox: ShellSandbox, command: str) -> None:
    # A number no other test (or parallel worker) uses, to find leftovers by.
    n = 900_000 + secrets.randbelow(99_999)
    sandbox.run("cd /tmp; KEEP=kept")
    started = time.monotonic()
    result = sandbox.run(f"{command.format(n=n)}; echo after", timeout=1)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.exit_code == TIMEOUT_EXIT_CODE
    assert "after" not in result.stdout
    assert elapsed < 3, elapsed
    # Nothing of the command is left running (zombies awaiting their reaper do not count).
    follow = sandbox.run(
        f"pwd; echo $KEEP; ps -eo stat=,args= | grep -v '^Z' | grep -c '[{n // 100_000}]{n % 100_000:05d}'"
    )
    assert not follow.restarted
    assert follow.stdout.split("\n")[:3] == ["/tmp", "kept", "0"]


@pytest.mark.timeout(20)
def test_timeout_spares_background_jobs_started_earlier(sandbox: ShellSandbox) -> None:
    sandbox.run("sleep 300 & BG=$!")
    assert sandbox.run("sleep 1000", timeout=1).timed_out
    result = sandbox.run("kill -0 $BG && echo still-running; jobs")
    assert result.stdout.startswith("still-running\n")
    assert "Running" in result.stdout


def test_output_is_capped_with_a_marker(sandbox: ShellSandbox) -> None:
    result = sandbox.run("head -c 10000000 /dev/zero | tr '\\0' 'a' | fold -w 100; echo done >&2")
    limit = sandbox.config.max_output_bytes
    assert result.truncated
    assert result.exit_code == 0
    assert TRUNCATION_MARKER.split("{")[0] in result.stdout
    # 10 MB in 100-byte lines: 99,999 newlines (fold adds none after the last line).
    assert f"{10_000_000 + 99_999 - limit} more bytes" in result.stdout
    assert len(result.stdout) < limit + 200
    assert result.stderr == "done\n"


def test_long_lines_are_cut(sandbox: ShellSandbox) -> None:
    result = sandbox.run("head -c 5000 /dev/zero | tr '\\0' 'b'; echo")
    assert result.truncated
    assert "line cut: 3000 more chars" in result.stdout


def test_config_caps_apply() -> None:
    config = SandboxConfig(backend="bwrap", max_output_bytes=100, max_line_chars=50)
    with BwrapSandbox(config) as sb:
        result = sb.run("seq 1000; seq 1000 >&2")
    assert result.truncated
    assert result.stdout.startswith("1\n2\n")
    assert "more bytes" in result.stdout and "more bytes" in result.stderr


def test_shell_death_restarts_on_the_next_command(sandbox: ShellSandbox) -> None:
    sandbox.run("cd /tmp; LOST=yes")
    died = sandbox.run("echo bye; exit 3")
    assert died.exit_code == 3
    assert died.stdout == "bye\n"
    assert not died.restarted
    after = sandbox.run("pwd; echo ${LOST:-unset}")
    assert after.restarted
    assert after.stdout == f"{home_of(sandbox)}\nunset\n"
    assert after.cwd == home_of(sandbox)
    assert not sandbox.run("true").restarted


def test_killed_shell_restarts(sandbox: ShellSandbox) -> None:
    result = sandbox.run("kill -9 $$")
    assert result.exit_code == 137
    assert sandbox.run("echo back").restarted


@pytest.mark.parametrize("timeout", [0, -1, 601, 10_000])
def test_out_of_range_timeouts_are_refused(sandbox: ShellSandbox, timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="out of range"):
        sandbox.run("true", timeout=timeout)
    with pytest.raises(ValueError):
        sandbox.run("true", timeout=timeout)


def test_default_timeout_comes_from_config() -> None:
    with pytest.raises(ConfigurationError):
        HostSandbox(SandboxConfig(default_timeout=601))
    with BwrapSandbox(SandboxConfig(default_timeout=0.5)) as sb:
        assert sb.run("sleep 30").timed_out


def test_nul_bytes_are_refused(sandbox: ShellSandbox) -> None:
    with pytest.raises(ValueError, match="NUL"):
        sandbox.run("echo a\x00b")


def test_run_starts_lazily_and_close_is_idempotent() -> None:
    sb = BwrapSandbox(SandboxConfig())
    assert not sb.running
    assert sb.run("echo lazy").stdout == "lazy\n"
    assert sb.running
    sb.close()
    sb.close()
    assert not sb.running
    with pytest.raises(SandboxError):
        sb.run("true")
    with pytest.raises(SandboxError):
        sb.start()


def test_close_without_start_and_after_death() -> None:
    BwrapSandbox(SandboxConfig()).close()
    sb = BwrapSandbox(SandboxConfig())
    sb.start()
    sb.run("exit 0")
    sb.close()
    sb.close()


def test_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_harness_platform.sandbox")
    long = "echo " + "x" * 300
    with BwrapSandbox(SandboxConfig()) as sb:
        sb.run("cd /tmp; echo hello\necho second line")
        sb.run(long)
        ident = sb.id
    messages = [
        r.getMessage() for r in caplog.records if r.name == "agent_harness_platform.sandbox"
    ]
    assert messages[0].startswith(f"[sandbox] Started bwrap sandbox {ident} (workspace /")
    assert messages[0].endswith(", hostname sandbox, user sandbox)")  # its own identity
    assert messages[1] == "[sandbox] $ cd /tmp; echo hello …"
    assert messages[2] == "[sandbox]   → exit=0, stdout=18 chars, cwd=/tmp"
    assert messages[3].startswith("[sandbox] $ echo xxx") and len(messages[3]) < 150
    assert messages[-1] == f"[sandbox] Stopping bwrap sandbox {ident}"
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_caller_workspace_is_used_and_kept(tmp_path_factory: pytest.TempPathFactory) -> None:
    workspace = tmp_path_factory.mktemp("ws")
    (workspace / "given.txt").write_text("from the caller\n")
    with HostSandbox(SandboxConfig(workspace=workspace)) as sb:
        assert sb.run("cat given.txt; touch made.txt").stdout == "from the caller\n"
    assert (workspace / "made.txt").exists()


def test_missing_workspace_is_a_configuration_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    missing = tmp_path_factory.mktemp("ws") / "nope"
    with pytest.raises(ConfigurationError, match="not a directory"):
        BwrapSandbox(SandboxConfig(workspace=missing))
