"""``ahp``: the platform's command line.

    ahp pending                              runs waiting for a person, with their questions
    ahp answer <execution> <answer>          answer a question (resumes the run if needed)
    ahp approve <execution> [--approver X]   approve a pending approval point
    ahp reject <execution> [--reason ...]    reject it; the model is told, nothing runs
    ahp runs [--flow F] [--limit N]          recent runs and their status
    ahp recover <execution>                  unstick a run killed inside a checkpoint

Answering only records the answer when the process that asked is still polling: that process
continues the run. When it is gone (closed terminal, ``kill -9``), the command resumes the
run here, from the same point; run it from the project root so the flow module imports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from .approval import current_user

__all__ = ["main"]

_APPROVAL_PREFIX = "approve_"


def _client() -> Any:
    from kitaru import KitaruClient

    return KitaruClient()


def _pending(client: Any, exec_id: str) -> list[Any]:
    return list(client.executions.pending_waits(exec_id))


def _choose_wait(client: Any, exec_id: str, name: str | None, *, approval: bool | None) -> Any:
    waits = _pending(client, exec_id)
    if name is not None:
        waits = [w for w in waits if w.name == name]
    elif approval is not None:
        waits = [w for w in waits if w.name.startswith(_APPROVAL_PREFIX) == approval]
    if not waits:
        kind = {True: "approval", False: "question", None: "wait"}[approval]
        raise SystemExit(
            f"ahp: execution {exec_id} has no pending {kind}"
            + (f" named {name!r}" if name else "")
            + "; `ahp pending` lists what is waiting"
        )
    if len(waits) > 1:
        names = ", ".join(w.name for w in waits)
        raise SystemExit(f"ahp: several waits are pending ({names}); pick one with --wait NAME")
    return waits[0]


def _waiting_pid(client: Any, exec_id: str, wait_name: str) -> int | None:
    metadata = client.executions.get(exec_id).metadata or {}
    entry = (metadata.get("ahp_waiting") or {}).get(wait_name) or {}
    pid = entry.get("pid")
    return pid if isinstance(pid, int) else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not going to continue the run
        with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _deliver(client: Any, exec_id: str, wait: Any, value: Any) -> int:
    from kitaru.errors import KitaruWaitValidationError

    try:
        client.executions.input(exec_id, wait=wait.name, value=value)
    except KitaruWaitValidationError as exc:
        print(f"ahp: answer refused, the run keeps waiting: {exc}", file=sys.stderr)
        return 2
    pid = _waiting_pid(client, exec_id, wait.name)
    if _alive(pid):
        print(f"[approval] answer recorded for {wait.name}; the waiting process {pid} continues")
        return 0
    print(f"[approval] answer recorded for {wait.name}; the waiting process is gone, resuming here")
    _mark_paused_if_orphaned(exec_id)
    _configure_output()
    execution = client.executions.resume(exec_id)
    status = str(getattr(execution, "status", "")).rsplit(".", 1)[-1].lower()
    print(f"[approval] execution {exec_id}: {status}")
    return 0 if "fail" not in status else 1


def _mark_paused_if_orphaned(exec_id: str) -> None:
    """A process killed while it polled for the answer never got to pause its run, which
    stays 'running' with a pending wait; resuming needs it paused, as the poll timeout does."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate

    run = Client().get_pipeline_run(UUID(exec_id))
    if run.status == ExecutionStatus.RUNNING:
        Client().zen_store.update_run(
            run_id=UUID(exec_id), run_update=PipelineRunUpdate(status=ExecutionStatus.PAUSED)
        )


def _configure_output() -> None:
    from .stage import configure_logging

    configure_logging()


def cmd_pending(args: argparse.Namespace) -> int:
    client = _client()
    runs = client.executions.list(status="waiting", limit=args.limit)
    if not runs:
        print("Nothing is waiting for a person.")
        return 0
    for execution in runs:
        for wait in _pending(client, execution.exec_id):
            kind = "approval" if wait.name.startswith(_APPROVAL_PREFIX) else "question"
            print(f"{execution.exec_id}  {execution.flow_name}  {kind}  wait={wait.name}")
            for line in (wait.question or "").splitlines():
                print(f"    {line}")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    client = _client()
    wait = _choose_wait(
        client, args.execution, args.wait, approval=False if not args.wait else None
    )
    value: Any = args.value
    schema = wait.schema or {}
    if schema.get("type") != "string":
        try:
            value = json.loads(args.value)
        except ValueError:
            print(
                f"ahp: wait {wait.name} expects JSON matching {json.dumps(schema)}; "
                f"{args.value!r} is not JSON",
                file=sys.stderr,
            )
            return 2
    return _deliver(client, args.execution, wait, value)


def _decide(args: argparse.Namespace, approved: bool) -> int:
    client = _client()
    wait = _choose_wait(client, args.execution, args.wait, approval=True)
    decision = {
        "approved": approved,
        "reason": getattr(args, "reason", None),
        "approver": args.approver or current_user(),
    }
    return _deliver(client, args.execution, wait, decision)


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, False)


def cmd_runs(args: argparse.Namespace) -> int:
    client = _client()
    for execution in client.executions.list(flow=args.flow, limit=args.limit):
        status = str(execution.status).rsplit(".", 1)[-1].lower()
        started = (
            execution.started_at.strftime("%Y-%m-%d %H:%M:%S") if execution.started_at else "-"
        )
        print(f"{execution.exec_id}  {status:<10} {started}  {execution.flow_name}")
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """A process killed inside a checkpoint leaves its run 'running' for good; mark it (and
    its unfinished checkpoints) failed, so the run is not stuck and a re-run can go on."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate, StepRunUpdate

    client = _client()
    execution = client.executions.get(args.execution)
    status = str(execution.status).rsplit(".", 1)[-1].lower()
    if status != "running":
        print(f"ahp: execution {args.execution} is {status}, not running; nothing to recover")
        return 0
    pid = (execution.metadata or {}).get("ahp_runner_pid")
    if _alive(pid if isinstance(pid, int) else None) and not args.force:
        print(
            f"ahp: execution {args.execution} is still being run by process {pid}; "
            "stop it first, or pass --force",
            file=sys.stderr,
        )
        return 2
    store = Client().zen_store
    run = Client().get_pipeline_run(UUID(execution.exec_id))
    for step in run.steps.values():
        if step.status == ExecutionStatus.RUNNING:
            store.update_run_step(
                step_run_id=step.id, step_run_update=StepRunUpdate(status=ExecutionStatus.FAILED)
            )
    store.update_run(
        run_id=UUID(execution.exec_id),
        run_update=PipelineRunUpdate(status=ExecutionStatus.FAILED),
    )
    print(
        f"[recover] execution {args.execution} marked failed. Run the stage again: its "
        "finished checkpoints are served from the cache, so finished work is not paid twice."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ahp", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pending", help="runs waiting for a person, with their questions")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_pending)

    p = sub.add_parser("answer", help="answer a pending question")
    p.add_argument("execution")
    p.add_argument("value", help="the answer (text for a question; JSON for other waits)")
    p.add_argument("--wait", help="the wait name, when several are pending")
    p.set_defaults(func=cmd_answer)

    for name, func, text in (
        ("approve", cmd_approve, "approve a pending approval point"),
        ("reject", cmd_reject, "reject a pending approval point"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("execution")
        p.add_argument("--wait", help="the wait name, when several are pending")
        p.add_argument("--approver", help="who decides (default: your user name)")
        if name == "reject":
            p.add_argument("--reason", help="why; shown to the model")
        p.set_defaults(func=func)

    p = sub.add_parser("runs", help="recent runs and their status")
    p.add_argument("--flow")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("recover", help="mark a run killed inside a checkpoint as failed")
    p.add_argument("execution")
    p.add_argument("--force", action="store_true", help="even if its process looks alive")
    p.set_defaults(func=cmd_recover)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # resume re-imports the flow module from the source root: the project root.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
