"""A flow for the recovery test: its second checkpoint can be made to hang until killed.

Run as ``python -m tests.kill_flow`` from the project root (Kitaru re-imports this module by
name when the run is retried).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import kitaru


@kitaru.checkpoint
def first_step() -> str:
    with Path(os.environ["AHP_TEST_TRACE"]).open("a") as trace:
        trace.write("first\n")
    return "first done"


@kitaru.checkpoint
def second_step(previous: str) -> str:
    with Path(os.environ["AHP_TEST_TRACE"]).open("a") as trace:
        trace.write("second\n")
    if os.environ.get("AHP_TEST_HANG") == "1":
        time.sleep(600)  # killed with -9 in here
    return f"{previous}, second done"


@kitaru.flow
def recoverable() -> str:
    first = first_step()
    return second_step(first).load()


if __name__ == "__main__":
    print(recoverable.run().wait())
