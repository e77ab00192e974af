"""The persistent-shell engine every backend shares.

One ``bash`` per sandbox, driven over pipes. Each command is sent as a single line
``eval -- $'<command>'`` so that ``cd``, variables, functions and aliases live on in the shell
itself, and so that a syntax error stays inside that one command. The shell is interactive
(``-i``) with job control switched on (``set -m``) but no terminal: interactive, because only
an interactive bash drops the command it is running on SIGINT and returns to its prompt (that
is how a timed-out builtin loop is stopped without losing the shell); job control, because it
puts every foreground job in a process group of its own, apart from the shell.

After every command bash runs ``PROMPT_COMMAND``, which prints a frame: a random per-command
marker, the exit status, the shell's pid and its working directory on stdout, and the marker
alone on stderr. Output before the markers is the command's; the engine keeps the first
``max_output_bytes`` of each stream and counts (but drops) the rest. The marker is kept in two
halves in two variables so that ``set`` or ``declare -p`` cannot print it by accident.

A timeout interrupts like a person at a terminal would: SIGINT to the command's processes and
to the shell, then SIGKILL to whatever is left of the command, while background jobs that
existed before the command are spared. If the shell cannot be brought back to its prompt, or
it dies (``exit``, out of memory), the backend's ``spawn`` starts a new one for the next
command, which reports ``restarted=True``.

How processes are started and signalled is the backend's business (:class:`ShellChannel`);
:class:`LocalShellChannel` covers shells that are children of this process (host, bwrap).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import ConfigurationError, SandboxError
from . import _proc
from .base import MAX_TIMEOUT, TRUNCATION_MARKER, ExecResult, SandboxConfig, cap_output

__all__ = [
    "TIMEOUT_EXIT_CODE",
    "LocalShellChannel",
    "ShellChannel",
    "ShellEngine",
    "check_timeout",
]

logger = logging.getLogger("agent_harness_platform.sandbox")

TIMEOUT_EXIT_CODE = 124
"""``exit_code`` of a command stopped by its timeout (as coreutils ``timeout`` reports)."""

STDOUT, STDERR = 1, 2

BASH_ARGV = ["bash", "--noprofile", "--norc", "--noediting", "-i"]
"""How every backend starts the shell (no rc files, no readline, interactive)."""

_START_TIMEOUT = 20.0
_FIRST_GRACE = 0.1  # after SIGINT, before escalating to SIGKILL
_KILL_ROUNDS = 15
_ROUND_WAIT = 0.05
_SYNC_ATTEMPTS = 20
_MAX_FRAME = 64 * 1024
_LOG_COMMAND_CHARS = 120

# Bash prints this when a job dies by a signal and it cannot restore terminal settings
# (there is no terminal); it is noise about the engine, never about the command.
_TTY_NOISE = re.compile(rb"bash: \[\d+: \d+ \(\d+\)\] tc[sg]etattr: [^\n]*\n")

_BOOTSTRAP = (
    "set +H +o history -m; exec 8>&1 9>&2 2>/dev/null; "
    "unset HISTFILE MAIL MAILCHECK MAILPATH PROMPT_COMMAND; PS1= PS2= PS0=; "
    "__ahp_frame() { local s=$? f; if [[ -n ${__ahp_a-} ]]; then "
    'printf -v f \'%s%s%d:%d:%s%s%s\' "$__ahp_a" "$__ahp_b" "$s" "$$" "$PWD" '
    '"$__ahp_a" "$__ahp_b"; '
    'printf \'%s\' "$f" >&8; printf \'%s%s\' "$__ahp_a" "$__ahp_b" >&9; '
    "__ahp_a= __ahp_b=; fi; return $s; }; "
    "readonly -f __ahp_frame; PROMPT_COMMAND=__ahp_frame; readonly PROMPT_COMMAND; "
)

# Bytes that may stand for themselves inside $'...'; everything else becomes \xHH.
_QUOTE = {i: f"\\x{i:02x}" for i in range(256) if not 0x20 <= i < 0x7F or i in (0x27, 0x5C)}


def ansi_c_quote(data: bytes) -> str:
    """Quote ``data`` as a bash ``$'...'`` word that evaluates to exactly those bytes."""
    return "$'" + data.decode("latin-1").translate(_QUOTE) + "'"


def check_timeout(timeout: float | None, default: float) -> float:
    """The effective timeout; out-of-range values are a caller mistake."""
    value = default if timeout is None else timeout
    if not 0 < value <= MAX_TIMEOUT:
        raise ConfigurationError(
            f"sandbox timeout {value!r} s is out of range: it must be > 0 and <= {MAX_TIMEOUT:g}"
        )
    return float(value)


class ShellChannel(Protocol):
    """One running shell, as the engine drives it. Backends implement this."""

    def send(self, data: bytes) -> None:
        """Write to the shell's stdin. Raises ``BrokenPipeError`` if the shell is gone."""

    def read(self, timeout: float) -> list[tuple[int, bytes]]:
        """Wait up to ``timeout`` s and return output chunks as ``(STDOUT|STDERR, bytes)``."""

    @property
    def exit_code(self) -> int | None:
        """The shell's exit status once it has ended (128+N for signal N), else None."""

    def attach(self, shell_pid: int) -> None:
        """Tell the channel the shell's own ``$$`` (reported by the shell at start-up)."""

    def jobs(self) -> frozenset[int]:
        """Process groups of the shell's current background jobs (spared by a timeout)."""

    def signal_command(self, sig: signal.Signals, keep: frozenset[int]) -> int:
        """Signal the shell's descendants outside ``keep``; returns how many."""

    def interrupt_shell(self) -> None:
        """Send SIGINT to the shell itself (drops the command it runs, keeps the shell)."""

    def terminate(self) -> None:
        """Kill every process of this shell now, without waiting. Safe from any thread."""

    def close(self) -> None:
        """Kill everything, wait until it is gone and release the pipes. Idempotent."""


class _Stream:
    """One stream of one command: keeps up to ``limit`` bytes before ``marker``."""

    def __init__(self, marker: bytes, limit: int) -> None:
        self._marker = marker
        self._limit = limit
        self._tail = b""
        self.kept = bytearray()
        self.total = 0
        self.closed = False
        self.after = bytearray()

    def feed(self, data: bytes) -> None:
        if self.closed:
            if len(self.after) < _MAX_FRAME:
                self.after += data[: _MAX_FRAME - len(self.after)]
            return
        buf = self._tail + data
        at = buf.find(self._marker)
        if at >= 0:
            self._keep(buf[:at])
            self._tail = b""
            self.closed = True
            self.feed(buf[at + len(self._marker) :])
            return
        hold = min(len(buf), len(self._marker) - 1)
        self._keep(buf[: len(buf) - hold])
        self._tail = buf[len(buf) - hold :]

    def _keep(self, data: bytes) -> None:
        self.total += len(data)
        room = self._limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def unterminated(self) -> bytes:
        """What was kept, including the held-back tail, when no marker ever came."""
        if not self.closed and self._tail:
            self._keep(self._tail)
            self._tail = b""
        return bytes(self.kept)


class _Frame:
    """Everything one command sends back, until its end-of-command markers."""

    def __init__(self, limit: int) -> None:
        self.marker_a = secrets.token_hex(8)
        self.marker_b = secrets.token_hex(8)
        marker = (self.marker_a + self.marker_b).encode()
        self.marker = marker
        self.out = _Stream(marker, limit)
        self.err = _Stream(marker, limit)
        self.status: tuple[int, int, str] | None = None
        self.garbled = False

    @property
    def assignment(self) -> str:
        return f"__ahp_a={self.marker_a} __ahp_b={self.marker_b}"

    def feed(self, stream: int, data: bytes) -> None:
        (self.out if stream == STDOUT else self.err).feed(data)
        if self.status is None and self.out.closed:
            end = self.out.after.find(self.marker)
            if end >= 0:
                self.status = self._parse(bytes(self.out.after[:end]))
            elif len(self.out.after) >= _MAX_FRAME:
                self.garbled = True

    def _parse(self, payload: bytes) -> tuple[int, int, str] | None:
        parts = payload.split(b":", 2)
        try:
            return int(parts[0]), int(parts[1]), parts[2].decode("utf-8", errors="replace")
        except (IndexError, ValueError):
            self.garbled = True
            return None

    @property
    def done(self) -> bool:
        return self.garbled or (self.status is not None and self.err.closed)


def _render(stream: _Stream, config: SandboxConfig, *, strip_noise: bool) -> tuple[str, bool]:
    kept = stream.unterminated()
    if strip_noise:
        kept = _TTY_NOISE.sub(b"", kept)
    text, truncated = cap_output(
        kept, max_bytes=config.max_output_bytes, max_line_chars=config.max_line_chars
    )
    dropped = stream.total - len(stream.kept)
    if dropped > 0:
        sep = "\n" if text and not text.endswith("\n") else ""
        text += sep + TRUNCATION_MARKER.format(omitted=dropped)
        truncated = True
    return text, truncated


def _first_line(command: str) -> str:
    stripped = command.strip()
    line = stripped.splitlines()[0] if stripped else ""
    if len(line) > _LOG_COMMAND_CHARS or "\n" in stripped:
        line = line[:_LOG_COMMAND_CHARS] + " …"
    return line


class ShellEngine:
    """A persistent shell with timeouts, output caps and restart-on-death.

    ``spawn`` starts one fresh shell process and returns its channel; the engine calls it at
    start and after the shell died. ``ready_check`` is bash run once at start-up, before the
    first command (e.g. wait for the proxy forwarder); it may ``exit`` to fail the start.
    """

    def __init__(
        self,
        spawn: Callable[[], ShellChannel],
        config: SandboxConfig,
        *,
        ready_check: str = "",
    ) -> None:
        check_timeout(config.default_timeout, config.default_timeout)
        self._spawn = spawn
        self._config = config
        self.ready_check = ready_check
        self._lock = threading.Lock()
        self._channel: ShellChannel | None = None
        self._closed = False
        self._died = False
        self._cwd = ""
        self.home = ""
        """The shell's working directory right after start (where a restart lands)."""

    @property
    def running(self) -> bool:
        """True while a shell is up."""
        return self._channel is not None and not self._died

    def start(self) -> None:
        """Start the shell if it is not running. Raises :class:`SandboxError` on failure."""
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed; open a new one", code="sandbox_closed")
            if self._channel is None:
                self._launch()

    def run(self, command: str, *, timeout: float | None = None) -> ExecResult:
        """Run ``command`` in the shell; see :class:`~.base.Sandbox`."""
        limit = check_timeout(timeout, self._config.default_timeout)
        if "\x00" in command:
            raise ValueError("the command contains a NUL byte, which bash cannot take")
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox is closed; open a new one", code="sandbox_closed")
            restarted = False
            if self._channel is not None and self._died:
                self._discard_channel()
                restarted = True
            if self._channel is None:
                self._launch()
                if restarted:
                    logger.warning("[sandbox] The shell had died; started a fresh one")
            logger.info("[sandbox] $ %s", _first_line(command))
            result = self._execute(command, limit, restarted)
        logger.info(
            "[sandbox]   → exit=%d, stdout=%d chars, cwd=%s%s",
            result.exit_code,
            len(result.stdout),
            result.cwd,
            f" (timed out after {limit:g} s)" if result.timed_out else "",
        )
        return result

    def close(self) -> None:
        """Stop the shell and everything it started. Idempotent; safe after a crash."""
        self._closed = True
        channel = self._channel
        if channel is not None:
            # Kill first, without the lock: a run() in another thread then returns promptly.
            channel.terminate()
        with self._lock:
            self._discard_channel()

    # -- internals -------------------------------------------------------------------------

    def _discard_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._died = False

    def _launch(self) -> None:
        channel = self._spawn()
        try:
            self._handshake(channel)
        except BaseException:
            channel.close()
            raise
        self._channel = channel
        self._died = False

    def _handshake(self, channel: ShellChannel) -> None:
        """Configure the fresh shell (framing, job control) and learn its pid and cwd."""
        frame = _Frame(limit=4096)
        check = f"{self.ready_check}; " if self.ready_check else ""
        line = _BOOTSTRAP + check + frame.assignment + "\n"
        try:
            channel.send(line.encode())
            complete = self._pump(channel, frame, time.monotonic() + _START_TIMEOUT)
        except BrokenPipeError:
            complete = False
        if not complete or frame.status is None:
            code = channel.exit_code
            detail = (frame.err.unterminated() or frame.out.unterminated()).decode(
                "utf-8", errors="replace"
            )
            detail = " ".join(detail.split())[-600:]
            state = f"exited with status {code}" if code is not None else "did not answer"
            raise SandboxError(
                f"the sandbox shell {state} during start-up" + (f": {detail}" if detail else ""),
                code="sandbox_start_failed",
            )
        _, shell_pid, cwd = frame.status
        channel.attach(shell_pid)
        self.home = self._cwd = cwd

    def _pump(self, channel: ShellChannel, frame: _Frame, deadline: float) -> bool:
        """Feed output into ``frame`` until it is complete (True) or deadline/death (False)."""
        while not frame.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            chunks = channel.read(remaining)
            for stream, data in chunks:
                frame.feed(stream, data)
            if not chunks and not frame.done and channel.exit_code is not None:
                return False
        return True

    def _execute(self, command: str, limit: float, restarted: bool) -> ExecResult:
        channel = self._channel
        assert channel is not None
        started = time.monotonic()
        frame = _Frame(limit=self._config.max_output_bytes)
        keep = channel.jobs()
        quoted = ansi_c_quote(command.encode("utf-8", "surrogateescape"))
        line = f"{frame.assignment}; eval -- {quoted} </dev/null 2>&9 8>&- 9>&-\n"
        timed_out = False
        try:
            channel.send(line.encode())
            complete = self._pump(channel, frame, started + limit)
            if not complete and channel.exit_code is None:
                timed_out = True
                complete = self._interrupt(channel, frame, keep)
                if complete:
                    complete = self._resync(channel)
                if not complete:
                    channel.terminate()
        except BrokenPipeError:
            complete = False

        if frame.garbled:
            # The command printed our marker (it can only have done so on purpose); the frame
            # cannot be trusted, and neither can the shell.
            channel.terminate()
            complete = False
        if complete and frame.status is not None:
            exit_code, _, self._cwd = frame.status
        else:
            self._died = True
            code = channel.exit_code
            exit_code = code if code is not None else 128 + int(signal.SIGKILL)
        if timed_out:
            exit_code = TIMEOUT_EXIT_CODE
        stdout, out_cut = _render(frame.out, self._config, strip_noise=False)
        stderr, err_cut = _render(frame.err, self._config, strip_noise=True)
        return ExecResult(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            cwd=self._cwd,
            timed_out=timed_out,
            truncated=out_cut or err_cut,
            duration=time.monotonic() - started,
            restarted=restarted,
        )

    def _interrupt(self, channel: ShellChannel, frame: _Frame, keep: frozenset[int]) -> bool:
        """Stop the running command, keep the shell; True once the shell is back at its prompt."""
        channel.signal_command(signal.SIGINT, keep)
        channel.interrupt_shell()
        if self._pump(channel, frame, time.monotonic() + _FIRST_GRACE):
            return True
        for _ in range(_KILL_ROUNDS):
            if channel.exit_code is not None:
                return False
            channel.signal_command(signal.SIGKILL, keep)
            channel.interrupt_shell()
            if self._pump(channel, frame, time.monotonic() + _ROUND_WAIT):
                return True
        return False

    def _resync(self, channel: ShellChannel) -> bool:
        """After SIGINTs, make sure none is still pending and the output pipes are clean.

        A late SIGINT can drop the next line the shell reads, so the next command is only sent
        once a harmless marker line has made the full round trip.
        """
        for _ in range(_SYNC_ATTEMPTS):
            frame = _Frame(limit=0)
            channel.send(f"{frame.assignment}\n".encode())
            if self._pump(channel, frame, time.monotonic() + _ROUND_WAIT * 2):
                return frame.status is not None
            if channel.exit_code is not None:
                return False
        return False


class LocalShellChannel:
    """A shell (or the sandbox that holds it) started as a child of this process.

    ``proc`` is the process we started: bash itself for the host backend, bwrap for the bwrap
    backend. Pids of the shell's processes are read from this host's ``/proc``; the shell's
    own pid is found from the ``$$`` it reports, through ``NSpid``. With ``session=True``
    teardown also kills processes that left the tree but kept the shell's session (the host
    backend, where no pid namespace collects them). With ``pid_namespace=True`` the child of
    ``proc`` is the namespace's pid 1, and killing it is how everything inside is stopped.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        session: bool = False,
        pid_namespace: bool = False,
    ) -> None:
        if proc.stdin is None or proc.stdout is None or proc.stderr is None:
            raise ValueError("the shell process needs stdin, stdout and stderr pipes")
        self._proc = proc
        self._session = session
        self._stdin = proc.stdin
        self._fds = {proc.stdout.fileno(): STDOUT, proc.stderr.fileno(): STDERR}
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._pidfd: int | None = os.pidfd_open(proc.pid)
        self._poll = select.poll()
        for fd in (*self._fds, self._pidfd):
            self._poll.register(fd, select.POLLIN)
        self._pid_namespace = pid_namespace
        self._init_pidfd: int | None = None
        self._shell_pid: int | None = None
        self._exit_code: int | None = None
        self._closed = False

    @property
    def pid(self) -> int:
        """Pid of the process we started (bash or bwrap)."""
        return self._proc.pid

    @property
    def shell_pid(self) -> int | None:
        """Host pid of the shell, once attached."""
        return self._shell_pid

    def send(self, data: bytes) -> None:
        if self._closed or self._exit_code is not None:
            raise BrokenPipeError("the shell has exited")
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise BrokenPipeError("the shell has exited") from exc

    def read(self, timeout: float) -> list[tuple[int, bytes]]:
        if self._closed:
            return []
        if self._exit_code is not None:
            return self._drain(limit=0)
        chunks: list[tuple[int, bytes]] = []
        for fd, _ in self._poll.poll(max(0, int(timeout * 1000 + 0.999))):
            if fd == self._pidfd:
                self._reap()
                chunks.extend(self._drain(limit=4 * 1024 * 1024))
                return chunks
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if data:
                chunks.append((self._fds[fd], data))
            else:
                self._poll.unregister(fd)
        return chunks

    def _drain(self, limit: int) -> list[tuple[int, bytes]]:
        """Whatever is already in the pipes after the process ended (background jobs may hold
        them open, so never wait for end-of-file)."""
        chunks: list[tuple[int, bytes]] = []
        budget = limit
        for fd, stream in self._fds.items():
            while budget > 0:
                try:
                    data = os.read(fd, min(65536, budget))
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                budget -= len(data)
                chunks.append((stream, data))
        return chunks

    def _reap(self) -> None:
        code = self._proc.wait()
        self._exit_code = 128 - code if code < 0 else code
        if self._pidfd is not None:
            self._poll.unregister(self._pidfd)

    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    def attach(self, shell_pid: int) -> None:
        if self._pid_namespace and self._init_pidfd is None:
            inits = _proc.children(self._proc.pid)
            if inits:
                with contextlib.suppress(ProcessLookupError):
                    self._init_pidfd = os.pidfd_open(inits[0])
        if _proc.inner_pid(self._proc.pid) == shell_pid:
            self._shell_pid = self._proc.pid
            return
        for pid in _proc.descendants(self._proc.pid):
            if _proc.inner_pid(pid) == shell_pid:
                self._shell_pid = pid
                return
        raise SandboxError(f"could not find the sandbox shell (pid {shell_pid} inside)")

    def jobs(self) -> frozenset[int]:
        if self._shell_pid is None:
            return frozenset()
        own = _proc.proc_info(self._shell_pid)
        groups = set()
        for child in _proc.children(self._shell_pid):
            info = _proc.proc_info(child)
            if info is not None and (own is None or info.pgid != own.pgid):
                groups.add(info.pgid)
        return frozenset(groups)

    def signal_command(self, sig: signal.Signals, keep: frozenset[int]) -> int:
        if self._shell_pid is None or self._exit_code is not None:
            return 0
        targets = []
        for pid in _proc.descendants(self._shell_pid):
            info = _proc.proc_info(pid)
            if info is not None and info.pgid not in keep:
                targets.append(pid)
        return _proc.send_signal(targets, sig)

    def interrupt_shell(self) -> None:
        if self._shell_pid is not None and self._exit_code is None:
            _proc.send_signal([self._shell_pid], signal.SIGINT)

    def _everything(self) -> list[int]:
        pids = _proc.descendants(self._proc.pid)
        if self._session:
            pids += [p for p in _proc.session_members(self._proc.pid) if p not in pids]
        return pids

    def terminate(self) -> None:
        self._kill_all()

    def _kill_all(self) -> list[int]:
        if self._closed:
            return []
        pids = self._everything()
        if self._init_pidfd is not None and self._exit_code is None:
            # The namespace's pid 1 takes every process inside along when it dies, and bwrap,
            # its parent, reaps it and exits: nothing is left behind, not even a zombie.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_pidfd, signal.SIGKILL)
                return pids
        _proc.send_signal(pids, signal.SIGKILL)
        if self._exit_code is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        return pids

    def close(self) -> None:
        if self._closed:
            return
        pids = self._kill_all()
        if self._exit_code is None:
            try:
                self._proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self._init_pidfd = None
                self._kill_all()
            self._reap()
        _proc.wait_gone(pids, timeout=2.0)
        self._closed = True
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for fd in (self._pidfd, self._init_pidfd):
            if fd is not None:
                os.close(fd)
        self._pidfd = self._init_pidfd = None
