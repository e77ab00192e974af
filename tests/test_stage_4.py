"""Stage 4 end to end: the credential proxy injects the wiki token; the worker never sees it.

The script runs once as a subprocess against a store of its own, whose demo secrets the test
creates first (so it knows the values to hunt for). The in-process test wires the real parts
by hand (mock services, mitmproxy credential proxy, bwrap sandbox behind it) and looks for the
token everywhere the worker can look, from inside the live sandbox.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import stage_4_proxy
from agent_harness_platform import sandbox_config_for
from agent_harness_platform.proxy import CredentialProxy
from agent_harness_platform.sandbox import ExecResult, Sandbox, open_sandbox
from mocks.app import SNIPPETS
from mocks.demo import DemoServices
from mocks.server import MockServices

from .conftest import PROJECT_ROOT
from .e2e_helpers import executed, prepare_store, run_script, section, stage_env, summary_paths

SCRIPT = "stage_4_proxy.py"
WIKI_URL = "http://wiki.local/snippets/durability"
INJECTED = "[proxy] injected headers for wiki.local: ['Authorization']"
WIKI_200 = "GET /snippets/durability (host=wiki.local, auth=Bearer…) → 200"
SECRET_NAMES = ("wiki-token", "webhook-token")


def wiki_fact() -> str:
    """The first sentence of the wiki's first durability snippet (what the summary cites)."""
    excerpt = SNIPPETS["durability"][0]["excerpt"]
    return excerpt.split(". ")[0] + "."


def files_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path, path.read_bytes()


@pytest.mark.timeout(600)
def test_stage_four_cites_the_wiki_and_the_token_is_nowhere_in_output_or_store(
    fresh_store_env: dict[str, str], tmp_path: Path
) -> None:
    env = stage_env(fresh_store_env, tmp_path / "calls.log")
    demo = prepare_store(env)
    tokens = {"wiki-token": demo.wiki, "webhook-token": demo.webhook}
    assert all(len(v) >= 16 for v in tokens.values())
    host_files = summary_paths(PROJECT_ROOT)

    done = run_script(SCRIPT, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    assert INJECTED in done.stdout
    assert f"[mock-services] {WIKI_200}" in done.stdout
    assert done.stdout.index(INJECTED) < done.stdout.index(WIKI_200)
    runs = executed(done.stdout)
    curls = [r for r in runs if r.command.startswith("curl")]
    assert [r.command for r in curls] == [f"curl -s {WIKI_URL}"]  # no auth header sent
    assert curls[0].exit_code == 0 and curls[0].stdout_chars > 0
    assert runs[-1].command.startswith("cat > summary.txt <<'EOF'") and runs[-1].cwd == "/tmp"

    result = section(done.stdout, "Result")
    assert wiki_fact() in result, result
    assert host_files.changed() == []

    for name, token in tokens.items():
        assert token not in output, f"{name} leaked into the terminal output"

    # Everything the run left in its Kitaru store: the artifact store (turn, prompt and tool
    # artifacts), the logs and the SQLite DB (metadata, checkpoints, runs). The secret store
    # lives in that DB too, where Kitaru keeps each secret's values as base64-encoded JSON, so
    # the legitimate copy is not a raw match; any place the run copied the token to (an
    # artifact, a metadata value, a log line) would hold it raw, which is what is searched for.
    store = [Path(env["KITARU_CONFIG_PATH"]), Path(env["ZENML_REPOSITORY_PATH"])]
    searched = list(files_under(*store))
    for name, token in tokens.items():
        leaks = [str(path) for path, data in searched if token.encode() in data]
        assert leaks == [], f"{name} found raw in the run's Kitaru store: {leaks}"
    # The search is not vacuous: it read the artifacts holding the wiki's answer (the curl
    # tool result), and the DB holding the secrets.
    fact = wiki_fact().encode()
    artifacts = [p for p, data in searched if fact in data and p.suffix != ".db"]
    assert artifacts, "no artifact holds the curl result: the walk missed the artifact store"
    assert any(b"wiki-token" in data for p, data in searched if p.suffix == ".db")


# -- inside the live sandbox ---------------------------------------------------------------


def host_ipv4_addresses() -> list[str]:
    """Every local IPv4 address of the host (from the kernel's FIB), loopback included."""
    addresses: list[str] = []
    last = ""
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            last = stripped[4:]
        elif "/32 host LOCAL" in stripped and last not in addresses:
            addresses.append(last)
    assert "127.0.0.1" in addresses, addresses
    return addresses


def leaked(results: list[ExecResult], *tokens: str) -> list[str]:
    return [r.stdout + r.stderr for r in results if any(t in r.stdout + r.stderr for t in tokens)]


def shell(
    sandbox: Sandbox, seen: list[ExecResult], command: str, timeout: float = 60
) -> ExecResult:
    result = sandbox.run(command, timeout=timeout)
    seen.append(result)
    assert not result.timed_out, f"{command!r} timed out"
    return result


@pytest.mark.timeout(600)
def test_inside_the_sandbox_the_token_is_invisible_and_only_the_proxy_is_reachable() -> None:
    started_at = int(time.time()) - 1  # before the token exists: see the /usr search below
    wiki_token = secrets.token_urlsafe(24)
    webhook_token = secrets.token_urlsafe(24)
    store = {"wiki-token": {"value": wiki_token}, "webhook-token": {"value": webhook_token}}
    profile = stage_4_proxy.DEFAULT_PROFILE
    seen: list[ExecResult] = []

    with (
        MockServices(wiki_token=wiki_token, webhook_token=webhook_token) as mocks,
        CredentialProxy(
            profile.proxy_rules,
            upstream_overrides=DemoServices(mocks.base_url).proxy_upstreams,
            secret_lookup=store.__getitem__,
        ) as proxy,
    ):
        config = dataclasses.replace(
            sandbox_config_for(profile), backend="bwrap", proxy=proxy.endpoint
        )
        assert httpx.get(f"{mocks.base_url}/healthz", timeout=5).status_code == 200  # it is up
        with open_sandbox(config) as sandbox:
            # Through the proxy: the token is injected on the way out and the mock accepts it.
            via_proxy = shell(sandbox, seen, f"curl -s -w '\\n%{{http_code}}' {WIKI_URL}")
            body, _, status = via_proxy.stdout.rstrip("\n").rpartition("\n")
            assert via_proxy.exit_code == 0 and status == "200", via_proxy
            assert json.loads(body)["snippets"][0]["excerpt"].startswith(wiki_fact())
            assert any(WIKI_200 in line for line in mocks.log_lines()), mocks.log_lines()

            # The environment, and every process's environment and command line.
            env = shell(sandbox, seen, "env")
            assert "HTTP_PROXY=" in env.stdout  # the per-run proxy token only
            assert leaked([env], wiki_token, webhook_token) == []
            procs = shell(
                sandbox,
                seen,
                "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do "
                "printf '== %s\\n' \"$f\"; tr '\\0' '\\n' < \"$f\"; echo; done",
            )
            assert procs.stdout.count("== /proc/") >= 6  # bwrap's init, sh, socat, bash, ...
            assert "socat" in procs.stdout and "HTTP_PROXY=" in procs.stdout
            assert leaked([procs], wiki_token, webhook_token) == []

            # Direct connections to the mock's port, on every host address, fail at once.
            for address in [*host_ipv4_addresses(), "localhost", "[::1]"]:
                direct = shell(
                    sandbox,
                    seen,
                    f"curl -sS --noproxy '*' --connect-timeout 5 -o /dev/null "
                    f"-w '%{{http_code}}' http://{address}:{mocks.port}/healthz",
                )
                assert direct.exit_code != 0, f"{address}:{mocks.port} reachable: {direct}"
                assert direct.duration < 3, f"{address}: failed slowly ({direct.duration:.1f}s)"

            # Every file the worker can read. A marker file proves the search reads /tmp. /usr
            # is the host's read-only /usr: there only files changed since the token was made
            # can hold it (a file's ctime cannot be set back), so only those are read.
            marker = secrets.token_hex(16)
            shell(sandbox, seen, f"echo {marker} > /tmp/ahp-e2e-marker.txt")
            patterns = f"-e {wiki_token} -e {webhook_token} -e {marker}"
            found = shell(
                sandbox,
                seen,
                "grep -rlF -D skip --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr "
                f"{patterns} / 2>/dev/null; "
                f"find /usr -type f -newerct @{started_at} -print0 2>/dev/null "
                f"| xargs -0 -r grep -lF {patterns} 2>/dev/null; echo searched",
                timeout=300,
            )
            assert found.stdout.splitlines() == ["/tmp/ahp-e2e-marker.txt", "searched"]

    assert leaked(seen, wiki_token, webhook_token) == []  # nor in any command's output
