"""``python -m agent_harness_platform.proxy {ensure-ca,warm}``: setup steps for ``setup.sh``.

``ensure-ca`` generates the local proxy CA if missing and prints its certificate path.
``warm`` fetches mitmproxy into uv's cache and checks that it starts (needs the package
registry once; later starts are offline).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from agent_harness_platform.proxy.ca import default_state_dir, ensure_ca
from agent_harness_platform.proxy.process import mitmdump_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_harness_platform.proxy")
    parser.add_argument("action", choices=["ensure-ca", "warm"])
    args = parser.parse_args(argv)
    if args.action == "ensure-ca":
        print(ensure_ca(default_state_dir()).cert_path)
        return 0
    command = [*mitmdump_command(), "--version"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"cannot run {command[0]}: {exc}", file=sys.stderr)
        return 1
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return result.returncode
    print(result.stdout.splitlines()[0] if result.stdout else "mitmdump ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
