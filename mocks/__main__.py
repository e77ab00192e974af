"""``python -m mocks``: serve the mock services with uvicorn.

Tokens come from the environment, never argv: ``AHP_MOCK_WIKI_TOKEN``,
``AHP_MOCK_WEBHOOK_TOKEN`` and optionally ``AHP_MOCK_ADMIN_TOKEN`` (enables ``/_records``).
They are removed from this process's environment once read.

Listen either on ``--host``/``--port`` (container mode) or on an already-bound socket passed
as ``--fd`` (what :class:`mocks.server.MockServices` does: no race for a free port).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import uvicorn

from mocks.app import create_app

TOKEN_VARS = ("AHP_MOCK_WIKI_TOKEN", "AHP_MOCK_WEBHOOK_TOKEN")
ADMIN_VAR = "AHP_MOCK_ADMIN_TOKEN"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--fd", type=int, default=None, help="serve on this listening socket")
    args = parser.parse_args(argv)

    missing = [name for name in TOKEN_VARS if not os.environ.get(name)]
    if missing:
        print(
            f"[mock-services] missing environment variable(s): {', '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    wiki_token, webhook_token = (os.environ.pop(name) for name in TOKEN_VARS)
    admin_token = os.environ.pop(ADMIN_VAR, None) or None

    app = create_app(wiki_token=wiki_token, webhook_token=webhook_token, admin_token=admin_token)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=False,  # our middleware prints the one line per request
        log_level="warning",
        lifespan="off",
        server_header=False,
    )
    server = uvicorn.Server(config)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        server.run(sockets=[sock])
    else:
        print(f"[mock-services] listening on http://{args.host}:{args.port}", flush=True)
        server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
