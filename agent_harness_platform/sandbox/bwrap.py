"""The bubblewrap backend: the persistent shell inside unprivileged Linux namespaces.

What it defends against: a command (written by a model, possibly steered by hostile input)
reading or changing the host's files, seeing the host's processes or environment, reaching
the network, gaining privileges, or exhausting the machine. Each sandbox gets new user,
mount, pid, network, ipc, uts and cgroup namespaces; no capabilities and ``no_new_privs``; a
root made of read-only ``/usr`` plus a short allow-list of ``/etc`` files (no shadow, no
users' data, no package-manager credentials); fresh ``/proc`` and ``/dev``; size-capped private
``/tmp`` and ``/dev/shm``; the workspace at ``/workspace``; a network namespace holding only
``lo``; and cgroup limits on memory, pids and CPU where the host allows them. When this
process is root, bwrap itself runs as the unprivileged ``ahp-sandbox`` user: bwrap started by
root keeps enough privilege to be escaped (a remount of ``/`` succeeded in trials).

What it does not defend against: kernel bugs (there is no seccomp filter, so the whole
syscall surface is reachable), side channels, reading the (read-only) system files that are
mounted, or what the credential proxy lets through. It also trusts the files it mounts: the
workspace is writable by design.

The proxy seam: with ``config.proxy`` set, the proxy's Unix socket is bind-mounted at
:data:`PROXY_SOCKET` and a ``socat`` forwarder inside (started before the shell) turns it into
``127.0.0.1:<inside_port>``; the CA is mounted at :data:`PROXY_CA` and named by
``SSL_CERT_FILE``, ``CURL_CA_BUNDLE`` and ``REQUESTS_CA_BUNDLE``. The sandbox user must be able
to reach the socket: every directory on its path searchable (``x``) and the socket writable
by that user (for instance ``chgrp ahp-sandbox`` and mode ``0660``).
"""

from __future__ import annotations

import functools
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigurationError, SandboxError, SandboxUnavailable
from ._cgroups import SandboxCgroup, create_cgroup
from ._layout import (
    PROXY_CA,
    PROXY_SOCKET,
    SANDBOX_PATH,
    WORKSPACE,
    forwarder_check,
    forwarder_command,
    sandbox_env,
)
from ._lifecycle import ShellSandbox
from ._shell import BASH_ARGV, LocalShellChannel
from .base import SandboxConfig

__all__ = [
    "PROXY_CA",
    "PROXY_SOCKET",
    "SANDBOX_PATH",
    "SANDBOX_USER",
    "WORKSPACE",
    "BwrapSandbox",
    "bwrap_options",
    "sandbox_env",
]

SANDBOX_USER = "ahp-sandbox"
"""Host user bwrap runs as when this process is root (``setup.sh`` creates it)."""

_SETUP_HINT = "run `bash setup.sh`"

# Host /etc entries the sandbox may read: what programs need to run (linker cache,
# alternatives symlinks, TLS roots, time zone, protocol tables). Never shadow/gshadow,
# sudoers, ssh keys, or package-manager configs that may hold tokens (pip.conf, npmrc,
# gitconfig). passwd, group, hosts, hostname and nsswitch.conf are written per sandbox.
_ETC_ALLOW = (
    "alternatives",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "host.conf",
    "iproute2",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "lsb-release",
    "magic",
    "magic.mime",
    "mime.types",
    "os-release",
    "perl",
    "protocols",
    "services",
    "ssl/certs",
    "ssl/openssl.cnf",
    "terminfo",
    "timezone",
)
_ETC_ALLOW_GLOBS = ("python3*",)
_TOP_LEVEL_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@functools.cache
def _bwrap_supports(binary: str, option: str) -> bool:
    try:
        text = subprocess.run(
            [binary, "--help"], capture_output=True, text=True, timeout=10, env={}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return option in text


def _searchable_by_everyone(path: Path) -> bool:
    try:
        resolved = path.resolve(strict=True)
        return all(os.stat(p).st_mode & 0o001 for p in (resolved, *resolved.parents))
    except OSError:
        return False


def _dir(path: str, mode: str = "0755") -> list[str]:
    return ["--perms", mode, "--dir", path]


def bwrap_options(
    config: SandboxConfig,
    *,
    workspace: Path,
    etc_dir: Path,
    disable_userns: bool = True,
) -> list[str]:
    """bwrap's options (not the command) for one sandbox; a pure function of its inputs.

    ``etc_dir`` holds the per-sandbox passwd, group, hosts, hostname and nsswitch.conf.
    """
    size_tmp = str(config.tmp_size_mb * 1024 * 1024)
    args = [
        "--unshare-all",
        "--unshare-user",
        *(["--disable-userns"] if disable_userns else []),
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for name, value in sandbox_env(config).items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LEVEL_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    args += _dir("/etc") + _dir("/etc/ssl")
    for name in ("passwd", "group", "hosts", "hostname", "nsswitch.conf"):
        args += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
    entries = list(_ETC_ALLOW)
    for pattern in _ETC_ALLOW_GLOBS:
        entries += sorted(os.path.relpath(p, "/etc") for p in glob.glob(f"/etc/{pattern}"))
    for entry in entries:
        args += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "01777", "--size", size_tmp, "--tmpfs", "/tmp"]
    args += ["--perms", "01777", "--size", size_tmp, "--tmpfs", "/dev/shm"]
    args += [*_dir("/var"), "--symlink", "../tmp", "/var/tmp"]
    args += _dir("/run")
    if config.proxy is not None:
        args += _dir("/run/ahp")
        args += ["--ro-bind", str(config.proxy.socket_path), PROXY_SOCKET]
        if config.proxy.ca_cert is not None:
            args += [*_dir("/etc/ahp"), "--ro-bind", str(config.proxy.ca_cert), PROXY_CA]
    args += ["--bind", str(workspace), WORKSPACE]
    # Last: nothing but /tmp, /dev/shm and the workspace stays writable.
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--chdir", WORKSPACE]
    return args


def _inner_command(config: SandboxConfig) -> list[str]:
    """What bwrap runs: the shell, with the proxy forwarder started next to it if needed."""
    if config.proxy is None:
        return BASH_ARGV
    # sh stays the parent of both, so the forwarder is not one of the shell's children (a
    # timeout kills those) and dies with the sandbox when the shell exits.
    shell = " ".join(BASH_ARGV)
    forwarder = forwarder_command(config.proxy.inside_port)
    return ["/bin/sh", "-c", f"{forwarder} & {shell}; exit $?"]


class BwrapSandbox(ShellSandbox):
    """A persistent shell inside bubblewrap. The default backend on Linux.

    ``sandbox_user`` is the host account bwrap runs as when this process is root; it must
    exist (``bash setup.sh`` creates ``ahp-sandbox``). Without root, bwrap runs as the
    current user and the cgroup limits are skipped unless a v2 subtree is delegated.

    A ``config.workspace`` you pass is mounted as it is: the sandbox user needs to reach it
    (and own it, for writes). A fresh one is created, owned by that user, otherwise. A
    restart after the shell died starts a new bwrap: ``/tmp`` and background jobs are gone,
    the workspace stays.
    """

    backend = "bwrap"

    def __init__(self, config: SandboxConfig, *, sandbox_user: str = SANDBOX_USER) -> None:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(f"bwrap is not installed; {_SETUP_HINT}")
        self._bwrap = bwrap
        self._ids: tuple[int, int] | None = None
        self._setpriv: str | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(sandbox_user)
            except KeyError as exc:
                raise SandboxUnavailable(
                    f"the sandbox user {sandbox_user!r} does not exist, and bwrap must not run "
                    f"as root; {_SETUP_HINT} (it creates the user)"
                ) from exc
            if entry.pw_uid == 0:
                raise ConfigurationError(f"the sandbox user {sandbox_user!r} must not be root")
            self._ids = (entry.pw_uid, entry.pw_gid)
            self._setpriv = shutil.which("setpriv")
            if self._setpriv is None:
                raise SandboxUnavailable(f"setpriv (util-linux) is not installed; {_SETUP_HINT}")
        if config.proxy is not None and shutil.which("socat") is None:
            raise SandboxUnavailable(f"socat is not installed (proxy forwarder); {_SETUP_HINT}")
        super().__init__(config)
        self._cgroup: SandboxCgroup | None = None
        if config.proxy is not None:
            self._engine.ready_check = forwarder_check(config.proxy.inside_port)

    @property
    def cgroup(self) -> SandboxCgroup | None:
        """The sandbox's cgroup, when limits are enforced."""
        return self._cgroup

    def _state_parent(self) -> str | None:
        if self._ids is None:
            return None  # bwrap runs as us: any temporary directory will do
        # The sandbox user must traverse to its workspace and /etc files; a private TMPDIR
        # (or a tempfile.tempdir cached from one) would lock it out.
        for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
            if _searchable_by_everyone(Path(candidate)):
                return candidate
        raise SandboxUnavailable(
            "no temporary directory the sandbox user can reach (tried TMPDIR, /tmp, /var/tmp); "
            "make /tmp world-searchable (mode 1777)"
        )

    def _cgroup_dirs(self) -> list[Path]:
        return list(self._cgroup.dirs) if self._cgroup is not None else []

    def _make_workspace(self, state_dir: Path) -> Path:
        workspace = super()._make_workspace(state_dir)
        if self.config.workspace is None and self._ids is not None:
            os.chown(workspace, *self._ids)
        return workspace

    def _prepare(self) -> None:
        assert self._state_dir is not None
        proxy = self.config.proxy
        if proxy is not None:
            if not Path(proxy.socket_path).exists():
                raise ConfigurationError(
                    f"proxy socket {proxy.socket_path} does not exist; start the proxy first"
                )
            if proxy.ca_cert is not None and not Path(proxy.ca_cert).is_file():
                raise ConfigurationError(f"proxy CA certificate {proxy.ca_cert} is not a file")
        # The sandbox user must traverse the state dir to reach its /etc files.
        self._state_dir.chmod(0o711)
        etc = self._state_dir / "etc"
        etc.mkdir(mode=0o755)
        uid, gid = self._ids or (os.getuid(), os.getgid())
        files = {
            "passwd": (
                "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                f"sandbox:x:{uid}:{gid}:sandbox:{WORKSPACE}:/bin/bash\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
            "group": f"root:x:0:\nsandbox:x:{gid}:\nnogroup:x:65534:\n",
            "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            "hostname": "sandbox\n",
            "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
        }
        for name, text in files.items():
            (etc / name).write_text(text)
            (etc / name).chmod(0o644)
        self._cgroup = create_cgroup(
            self.id,
            memory_mb=self.config.memory_mb,
            pids_max=self.config.pids_max,
            cpu_quota=self.config.cpu_quota,
        )

    def _launcher(self) -> list[str]:
        """Enter the cgroups (as root, before anything forks), then drop to the sandbox user."""
        argv: list[str] = []
        if self._cgroup is not None:
            files = [str(p) for p in self._cgroup.procs_files]
            script = (
                'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; '
                'shift; n=$((n - 1)); done; exec "$@"'
            )
            argv += ["/bin/sh", "-c", script, "ahp-cgroup-enter", str(len(files)), *files]
        if self._ids is not None and self._setpriv is not None:
            uid, gid = self._ids
            argv += [
                self._setpriv,
                f"--reuid={uid}",
                f"--regid={gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ]
        return argv

    def _spawn(self) -> LocalShellChannel:
        assert self._state_dir is not None and self._workspace is not None
        options = bwrap_options(
            self.config,
            workspace=self._workspace,
            etc_dir=self._state_dir / "etc",
            disable_userns=_bwrap_supports(self._bwrap, "--disable-userns"),
        )
        # Options travel through a memfd (--args), so neither the host's ps nor the
        # sandbox's /proc/1/cmdline shows the environment values.
        args_fd = os.memfd_create("ahp-bwrap-args")
        try:
            os.write(args_fd, b"".join(a.encode() + b"\0" for a in options))
            os.lseek(args_fd, 0, os.SEEK_SET)
            argv = [
                *self._launcher(),
                self._bwrap,
                "--args",
                str(args_fd),
                "--",
                *_inner_command(self.config),
            ]
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                pass_fds=(args_fd,),
                start_new_session=True,
                cwd="/",
            )
        except OSError as exc:
            raise SandboxError(
                f"could not launch bwrap: {exc}", code="sandbox_start_failed"
            ) from exc
        finally:
            os.close(args_fd)
        return LocalShellChannel(proc, pid_namespace=True)

    def _release(self) -> None:
        if self._cgroup is not None:
            self._cgroup.remove()
